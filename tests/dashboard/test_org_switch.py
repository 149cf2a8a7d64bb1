"""The dashboard's organization switcher: a signed-in member sees and acts in the organization
they chose (its sandboxes listed, new sandboxes made there), never one they are not in."""

import pytest
from django.contrib.auth import get_user_model

from apps.orgs import services
from apps.sandboxes.models import Sandbox

pytestmark = pytest.mark.django_db


def test_a_member_switches_to_an_org_and_sees_its_sandboxes(browser, owner, outsider, templates):
    colleague = get_user_model().objects.create_user(username="colleague")
    org = services.org_create(user=colleague, name="Acme", slug="acme")
    services.member_add(org=org, user_ref="owner", role="viewer")
    theirs = Sandbox.objects.create(
        owner=colleague, org=org, template=templates["python-3"], name="in-acme", cpu=1, memory=2**30
    )
    mine = Sandbox.objects.create(
        owner=owner, org=services.personal_org_ensure(user=owner), template=templates["python-3"], name="mine",
        cpu=1, memory=2**30,
    )  # fmt: skip
    page = browser.get("/sandboxes/").content.decode()
    assert 'name="org"' in page and "Acme" in page
    assert "mine" in page and "in-acme" not in page
    assert browser.post("/orgs/switch", {"org": "acme"}).status_code == 302
    page = browser.get("/sandboxes/").content.decode()
    assert "in-acme" in page and "mine" not in page
    assert browser.get(f"/sandboxes/{theirs.id}/").status_code == 200
    assert browser.get(f"/sandboxes/{mine.id}/").status_code == 404  # another organization's
    # A viewer may look, not act: the action is a 403 page.
    assert browser.post(f"/sandboxes/{theirs.id}/actions/stop").status_code == 403
    # An organization one is not in cannot be chosen.
    services.org_create(user=outsider, name="Other", slug="other")
    assert browser.post("/orgs/switch", {"org": "other"}).status_code == 404
    assert browser.get("/orgs/switch").status_code == 405
