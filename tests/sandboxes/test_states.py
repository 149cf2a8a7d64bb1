"""The moves of apps/sandboxes/states.py that need no engine: `unreachable` (its node is down)
and back, each a conditional update; a request on an unreachable sandbox is 409
sandbox_unreachable, and only a destroy claims it."""

import pytest

from apps.marketplace.models import Template
from apps.sandboxes import states
from apps.sandboxes.models import Status
from tests.conftest import sandbox_row
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(db):
    return Template.objects.create(name="states", display_name="States", image="x", user="sandbox")


@pytest.mark.parametrize("status", ["running", "paused"])
def test_running_and_paused_become_unreachable(owner, template, status):
    sandbox = sandbox_row(owner, template, status=status)
    assert states.move(sandbox, states.UNREACHABLE_FROM, Status.UNREACHABLE, status_reason=states.NODE_DOWN)
    assert (sandbox.status, sandbox.status_reason) == ("unreachable", "node down")


@pytest.mark.parametrize("status", ["stopped", "creating", "destroying", "error", "destroyed"])
def test_other_states_do_not_become_unreachable(owner, template, status):
    sandbox = sandbox_row(owner, template, status=status)
    assert not states.move(sandbox, states.UNREACHABLE_FROM, Status.UNREACHABLE)
    assert sandbox.status == status


@pytest.mark.parametrize("to", sorted(states.RETURN_TO))
def test_an_unreachable_sandbox_returns_to_what_its_container_says(owner, template, to):
    sandbox = sandbox_row(owner, template, status="unreachable", status_reason="node down")
    assert states.move(sandbox, {Status.UNREACHABLE}, to, status_reason="")
    assert sandbox.status == to
    assert not states.move(sandbox, {Status.UNREACHABLE}, to)  # a second return loses: conditional


@pytest.mark.parametrize("action", ["start", "stop", "restart", "pause", "resume"])
def test_a_lifecycle_action_on_an_unreachable_sandbox_is_409_sandbox_unreachable(owner, template, action):
    sandbox = sandbox_row(owner, template, status="unreachable")
    with pytest.raises(errors.SandboxUnreachable) as refused:
        states.claim(sandbox, states.ACTIONS_FROM[action], Status.STOPPING, action)
    assert refused.value.status == 409 and refused.value.details["status"] == "unreachable"
    with pytest.raises(errors.SandboxUnreachable):
        states.require_reachable(sandbox)
    assert sandbox.status == "unreachable"


def test_only_a_destroy_claims_an_unreachable_sandbox(owner, template):
    sandbox = sandbox_row(owner, template, status="unreachable", status_reason="node down")
    assert states.actions_from(Status.UNREACHABLE) == ["destroy"]
    assert states.claim(sandbox, states.DESTROY_FROM, Status.DESTROYING, "destroy") == "unreachable"
    assert (sandbox.status, sandbox.status_reason) == ("destroying", "node down")  # what reconcile waits for


def test_the_dashboard_shows_an_unreachable_sandbox_and_offers_destroy(owner, template, client):
    sandbox = sandbox_row(owner, template, status="unreachable", status_reason="node down", container_id="c1")
    client.force_login(owner)
    listing = client.get("/sandboxes/")
    assert listing.status_code == 200 and b"status-unreachable" in listing.content
    page = client.get(f"/sandboxes/{sandbox.id}/")
    assert page.status_code == 200 and b"unreachable" in page.content and b"node down" in page.content
    assert client.get(f"/sandboxes/{sandbox.id}/metrics").status_code in (200, 409)
    assert client.post(f"/sandboxes/{sandbox.id}/actions/destroy").status_code in (200, 204, 302)
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.status_reason) == ("destroying", "node down")  # finished when the node returns
