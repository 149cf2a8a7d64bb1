"""Dashboard sandbox pages: list, create, overview, metrics, actions (owner, outsider, anonymous)."""

import re

import pytest
from django.test import Client

from apps.sandboxes import states
from apps.sandboxes.models import Sandbox, Status
from tests.conftest import sandbox_row


@pytest.fixture
def sandbox(create_sandbox):
    return Sandbox.objects.get(pk=create_sandbox()["id"])


def test_anonymous_is_sent_to_sign_in(db):
    client = Client()
    for path in ("/sandboxes/", "/sandboxes/new", "/sandboxes/sbx_x/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert Client().get("/login/").status_code == 200
    assert b"make run" in Client().get("/").content


def test_sign_in_and_out(owner):
    owner.set_password("pw-123456")
    owner.save()
    client = Client()
    response = client.post("/login/", {"username": owner.username, "password": "wrong"})
    assert response.status_code == 200 and b"do not match" in response.content
    response = client.post("/login/", {"username": owner.username, "password": "pw-123456"})
    assert response.status_code == 302 and response["Location"] == "/sandboxes/"
    assert client.get("/").status_code == 302
    assert client.post("/logout/").status_code == 302
    assert client.get("/sandboxes/").status_code == 302


def test_list_shows_only_the_owners_sandboxes_and_filters(browser, outsider_browser, sandbox):
    page = browser.get("/sandboxes/")
    assert page.status_code == 200 and sandbox.name.encode() in page.content
    assert b'id="sandbox-rows"' in page.content
    rows = browser.get("/sandboxes/?partial=rows", HTTP_HX_REQUEST="true")
    assert rows.status_code == 200 and b"<html" not in rows.content and sandbox.id.encode() in rows.content
    assert sandbox.name.encode() not in browser.get("/sandboxes/?status=stopped").content
    assert sandbox.name.encode() not in outsider_browser.get("/sandboxes/").content


def test_detail_overview_and_metrics(browser, outsider_browser, sandbox):
    page = browser.get(f"/sandboxes/{sandbox.id}/")
    assert page.status_code == 200 and b"Overview" in page.content and b'hx-trigger="load, every 5s"' in page.content
    metrics = browser.get(f"/sandboxes/{sandbox.id}/metrics")
    assert metrics.status_code == 200 and b"CPU" in metrics.content and b"Workspace" in metrics.content
    assert outsider_browser.get(f"/sandboxes/{sandbox.id}/").status_code == 404
    assert outsider_browser.get(f"/sandboxes/{sandbox.id}/metrics").status_code == 404
    assert outsider_browser.post(f"/sandboxes/{sandbox.id}/actions/destroy").status_code == 404
    assert Sandbox.objects.get(pk=sandbox.pk).status == "running"


def test_actions_extend_and_bulk(browser, sandbox):
    response = browser.post(f"/sandboxes/{sandbox.id}/actions/stop")
    assert response.status_code == 302 and Sandbox.objects.get(pk=sandbox.pk).status == "stopped"
    browser.post(f"/sandboxes/{sandbox.id}/actions/start")
    assert Sandbox.objects.get(pk=sandbox.pk).status == "running"
    assert browser.post(f"/sandboxes/{sandbox.id}/actions/explode").status_code == 404
    assert browser.get(f"/sandboxes/{sandbox.id}/actions/stop").status_code == 405
    browser.post(f"/sandboxes/{sandbox.id}/extend", {"timeout": "2h"})
    assert Sandbox.objects.get(pk=sandbox.pk).timeout_seconds == 7200
    response = browser.post("/sandboxes/bulk", {"action": "destroy", "ids": [sandbox.id]})
    assert response.status_code == 302 and Sandbox.objects.get(pk=sandbox.pk).status == "destroyed"


def test_create_form(browser, templates, cleanup_sandbox_ids):
    page = browser.get("/sandboxes/new")
    assert page.status_code == 200 and b"python-3" in page.content
    bad = browser.post("/sandboxes/new", {"template": "python-3.13", "env": "not a pair", "timeout": ""})
    assert bad.status_code == 200 and b"not NAME=value" in bad.content
    bad = browser.post("/sandboxes/new", {"template": "python-3.13", "timeout": "soon"})
    assert bad.status_code == 200 and Sandbox.objects.count() == 0
    response = browser.post(
        "/sandboxes/new", {"template": "python-3.13", "name": "from-form", "env": "A=1\nB=two", "timeout": "30m"}
    )
    assert response.status_code == 302
    created = Sandbox.objects.get(name="from-form")
    cleanup_sandbox_ids.append(created.id)
    assert response["Location"] == f"/sandboxes/{created.id}/"
    assert created.status == "running" and created.timeout_seconds == 1800 and set(created.env) == {"A", "B"}


@pytest.mark.parametrize("status", [s for s in Status.values if s != Status.DESTROYED])
def test_the_page_offers_exactly_the_actions_its_state_accepts(browser, owner, templates, status):
    """The buttons come from states.py, as the API's checks do: an errored sandbox used to be
    offered "start", which answered 409; it is offered "recover" (its container made again)."""
    template = templates["python-3"]
    sandbox = sandbox_row(owner, template, name=f"s-{status}", status=status)
    page = browser.get(f"/sandboxes/{sandbox.id}/").content.decode()
    offered = re.findall(rf'/sandboxes/{sandbox.id}/actions/(\w+)"', page)
    assert offered == states.actions_from(status)
    if status == Status.ERROR:
        assert offered == ["recover", "destroy"]
    # What is not offered is refused by the service before the engine is asked: nothing changes.
    for action in sorted(set(states.ACTIONS_FROM) - set(offered)):
        browser.post(f"/sandboxes/{sandbox.id}/actions/{action}")
        assert Sandbox.objects.get(pk=sandbox.pk).status == status, action
