"""The sharing card on a sandbox's overview (docs/api.md, Sharing a sandbox) through the Django test
client and the real database, on container-less rows: whoever may manage the sandbox shares it
with a member or a team, changes the level and revokes; the grantee then finds it in their list;
whoever may only read it sees the grants and is refused a change (403 naming the permission); a
grantee may give up their own."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.audit.models import AuditEntry
from apps.orgs import services as org_services
from apps.sandboxes.models import SandboxGrant
from tests.conftest import sandbox_row

pytestmark = pytest.mark.django_db


def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _signed_in(user, org) -> Client:
    client = Client()
    client.force_login(user)
    assert client.post("/orgs/switch", {"org": org.slug}).status_code == 302
    return client


@pytest.fixture
def acme(owner, browser):
    """Acme (owner acts in it) with bill (billing: no sandboxes.* permission), vic (viewer: reads
    every sandbox, manages none) and a team qa with bill in it."""
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    assert browser.post("/orgs/switch", {"org": "acme"}).status_code == 302
    users = {}
    for name, role in (("bill", "billing"), ("vic", "viewer")):
        users[name] = get_user_model().objects.create_user(username=name, email=f"{name}@example.com")
        org_services.member_add(org=org, user_ref=name, role=role)
    org_services.team_create(org=org, name="qa")
    org_services.team_member_add(team=org.teams.get(name="qa"), user_ref="bill")
    return org, users


@pytest.fixture
def sandbox(owner, templates, acme):
    return sandbox_row(owner, templates["python-3"], org=acme[0], name="shared-box")


def _grant(sandbox, **who) -> SandboxGrant | None:
    return SandboxGrant.objects.filter(sandbox=sandbox, **who).first()


def test_owner_shares_with_a_member_who_then_sees_it_in_their_list(browser, acme, sandbox):
    org, users = acme
    bill = _signed_in(users["bill"], org)
    assert f"row-{sandbox.id}" not in _page(bill.get("/sandboxes/"))
    assert bill.get(f"/sandboxes/{sandbox.id}/").status_code == 403

    page = _page(browser.get(f"/sandboxes/{sandbox.id}/"))
    assert 'id="share"' in page and 'id="no-grants"' in page
    assert '<option value="bill">' in page and '<option value="owner">' not in page  # the owner needs no grant
    assert '<option value="qa"' in page

    response = browser.post(
        f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "user": "bill", "access": "use"}, follow=True
    )
    page = _page(response)
    assert "Shared with bill: use." in page and 'data-grant="bill"' in page
    grant = _grant(sandbox, user=users["bill"])
    assert grant.access == "use" and grant.created_by.username == "owner"
    entry = AuditEntry.objects.filter(org_id=org.pk, action="grant.created").get()
    assert (entry.actor, entry.source, entry.target_id) == ("owner", "dashboard", sandbox.id)

    # The member now finds it in their list and opens it; they may not share it on.
    assert f"row-{sandbox.id}" in _page(bill.get("/sandboxes/"))
    page = _page(bill.get(f"/sandboxes/{sandbox.id}/"))
    assert 'data-grant="bill"' in page and "(you)" in page and 'id="share"' not in page
    assert "Give up" in page and "data-change-grant" not in page
    assert (
        bill.post(f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "user": "vic", "access": "read"}).status_code
        == 403
    )

    # By email, to someone holding a grant already: the level changes.
    response = browser.post(
        f"/sandboxes/{sandbox.id}/grants/new",
        {"org": "acme", "user": "BILL@example.com", "access": "manage"},
        follow=True,
    )
    assert "Changed the access of bill: manage." in _page(response)
    assert SandboxGrant.objects.filter(sandbox=sandbox).count() == 1 and _grant(sandbox).access == "manage"
    # With manage, the member may share it too.
    assert 'id="share"' in _page(bill.get(f"/sandboxes/{sandbox.id}/"))


def test_change_the_level_share_with_a_team_and_revoke(browser, acme, sandbox):
    org, users = acme
    browser.post(f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "user": "bill", "access": "use"})
    grant = _grant(sandbox, user=users["bill"])
    response = browser.post(
        f"/sandboxes/{sandbox.id}/grants/{grant.pk}/access", {"org": "acme", "access": "read"}, follow=True
    )
    assert "bill now has read access." in _page(response)
    grant.refresh_from_db()
    assert grant.access == "read"
    page = _page(
        browser.post(
            f"/sandboxes/{sandbox.id}/grants/{grant.pk}/access", {"org": "acme", "access": "root"}, follow=True
        )
    )
    assert "access is one of read, use, manage. (validation_error)" in page
    grant.refresh_from_db()
    assert grant.access == "read"

    response = browser.post(
        f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "team": "qa", "access": "use"}, follow=True
    )
    page = _page(response)
    assert "Shared with team qa: use." in page and 'data-grant="team:qa"' in page
    team_grant = _grant(sandbox, team__name="qa")
    assert team_grant.access == "use"
    browser.post(f"/sandboxes/{sandbox.id}/grants/{team_grant.pk}/access", {"org": "acme", "access": "manage"})
    team_grant.refresh_from_db()
    assert team_grant.access == "manage"

    # Bad input: a message, the input kept, nothing shared.
    for body, message in (
        ({"user": "", "team": ""}, "Name a member (username or email) or choose a team, not both."),
        ({"user": "bill", "team": "qa"}, "Name a member (username or email) or choose a team, not both."),
        ({"user": "nobody"}, "(member_not_found)"),
        ({"user": "outsider"}, "(member_not_found)"),
        ({"team": "ghosts"}, "(team_not_found)"),
        ({"user": "vic", "access": "root"}, "(validation_error)"),
    ):
        page = _page(browser.post(f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "access": "read", **body}))
        assert message in page, body
        if body.get("user"):
            assert f'id="share-user" name="user" maxlength="254" list="share-members" value="{body["user"]}"' in page
    assert SandboxGrant.objects.filter(sandbox=sandbox).count() == 2

    response = browser.post(f"/sandboxes/{sandbox.id}/grants/{grant.pk}/revoke", {"org": "acme"}, follow=True)
    page = _page(response)
    assert "shared-box is no longer shared with bill." in page and 'data-grant="bill"' not in page
    assert _grant(sandbox, user=users["bill"]) is None
    # bill still reaches it through the team qa, until that grant goes too.
    bill = _signed_in(users["bill"], org)
    assert f"row-{sandbox.id}" in _page(bill.get("/sandboxes/"))
    browser.post(f"/sandboxes/{sandbox.id}/grants/{team_grant.pk}/revoke", {"org": "acme"})
    assert not SandboxGrant.objects.filter(sandbox=sandbox).exists()
    assert f"row-{sandbox.id}" not in _page(bill.get("/sandboxes/"))
    assert browser.post(f"/sandboxes/{sandbox.id}/grants/{grant.pk}/revoke", {"org": "acme"}).status_code == 404
    assert [e.action for e in AuditEntry.objects.filter(org_id=org.pk, action__startswith="grant.")] == [
        "grant.created",
        "grant.updated",
        "grant.created",
        "grant.updated",
        "grant.deleted",
        "grant.deleted",
    ]


def test_a_viewer_without_manage_sees_the_grants_but_cannot_share(browser, acme, sandbox):
    org, users = acme
    browser.post(f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "user": "bill", "access": "use"})
    grant = _grant(sandbox, user=users["bill"])
    vic = _signed_in(users["vic"], org)
    page = _page(vic.get(f"/sandboxes/{sandbox.id}/"))
    assert 'data-grant="bill"' in page and 'id="share"' not in page
    assert "data-change-grant" not in page and "data-revoke-grant" not in page
    for path, body in (
        (f"/sandboxes/{sandbox.id}/grants/new", {"user": "vic", "access": "manage"}),
        (f"/sandboxes/{sandbox.id}/grants/{grant.pk}/access", {"access": "manage"}),
        (f"/sandboxes/{sandbox.id}/grants/{grant.pk}/revoke", {}),
    ):
        response = vic.post(path, {"org": "acme", **body})
        assert response.status_code == 403, path
        assert b"sandboxes.manage_all" in response.content, path
    assert _grant(sandbox, user=users["vic"]) is None
    grant.refresh_from_db()
    assert grant.access == "use"
    assert vic.get(f"/sandboxes/{sandbox.id}/grants/new").status_code == 405


def test_a_grantee_gives_up_their_own_grant(browser, acme, sandbox):
    org, users = acme
    browser.post(f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "user": "bill", "access": "read"})
    grant = _grant(sandbox, user=users["bill"])
    bill = _signed_in(users["bill"], org)
    response = bill.post(f"/sandboxes/{sandbox.id}/grants/{grant.pk}/revoke", {"org": "acme"})
    assert response.status_code == 302 and response["Location"] == "/sandboxes/"
    assert "You gave up your access to shared-box." in _page(bill.get("/sandboxes/"))
    assert _grant(sandbox) is None
    assert bill.get(f"/sandboxes/{sandbox.id}/").status_code == 403


def test_another_organizations_sandbox_and_a_personal_one(browser, owner, outsider, templates, acme):
    theirs = sandbox_row(outsider, templates["python-3"], name="theirs")
    for path in (f"/sandboxes/{theirs.id}/grants/new", f"/sandboxes/{theirs.id}/grants/grt_x/revoke"):
        assert browser.post(path, {"org": "acme", "user": "bill", "access": "read"}).status_code == 404, path
    assert not SandboxGrant.objects.exists()
    # A sandbox of the owner's personal organization: nobody to share it with, and it says so.
    personal = sandbox_row(owner, templates["python-3"], name="mine")
    client = Client()
    client.force_login(owner)
    page = _page(client.get(f"/sandboxes/{personal.id}/"))
    assert 'id="share-personal"' in page and 'id="share"' not in page
    assert re.search(r'id="no-grants"', page)


def test_a_form_shown_for_another_organization_changes_nothing(browser, owner, acme, sandbox):
    """Shown in Acme, sent after switching to the personal organization in another tab."""
    _org, users = acme
    browser.post(f"/sandboxes/{sandbox.id}/grants/new", {"org": "acme", "user": "bill", "access": "read"})
    grant = _grant(sandbox, user=users["bill"])
    page = _page(browser.get(f"/sandboxes/{sandbox.id}/"))
    assert page.count('<input type="hidden" name="org" value="acme">') == 3  # share, change, revoke
    personal = org_services.personal_org_ensure(user=owner)
    assert browser.post("/orgs/switch", {"org": personal.slug}).status_code == 302
    for path, body in (
        (f"/sandboxes/{sandbox.id}/grants/new", {"user": "vic", "access": "read"}),
        (f"/sandboxes/{sandbox.id}/grants/{grant.pk}/access", {"access": "manage"}),
        (f"/sandboxes/{sandbox.id}/grants/{grant.pk}/revoke", {}),
    ):
        response = browser.post(path, {"org": "acme", **body}, follow=True)
        assert "You switched organization since this page was loaded: nothing changed." in _page(response), path
    grant.refresh_from_db()
    assert grant.access == "read" and SandboxGrant.objects.filter(sandbox=sandbox).count() == 1
