"""The dashboard's organization pages (members, roles, teams, a new organization) through the
Django test client and the real database: the same rules as the REST API (give or take only
permissions you hold, the last owner stays, a personal organization has no other members), a
missing permission is a 403 page, a refusal is a message on the page, never a 500."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.keys.actors import SESSION_ORG
from apps.orgs import selectors, services
from apps.orgs.models import Membership, Organization, Role, Team

pytestmark = pytest.mark.django_db

PERSONAL_OR_SWITCHED = ("/org/", "/org/roles/", "/org/teams/")


def _user(username: str, email: str = ""):
    return get_user_model().objects.create_user(username=username, email=email or f"{username}@example.com")


def _signed_in(user, org=None) -> Client:
    client = Client()
    client.force_login(user)
    if org is not None:
        assert client.post("/orgs/switch", {"org": org.slug}).status_code == 302
    return client


def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.fixture
def acme(owner, browser):
    """Acme, owned by `owner`, who acts in it (the `browser` client switched to it)."""
    org = services.org_create(user=owner, name="Acme", slug="acme")
    assert browser.post("/orgs/switch", {"org": "acme"}).status_code == 302
    return org


def _membership(org, username) -> Membership | None:
    return Membership.objects.filter(org=org, user__username=username).first()


def test_anonymous_is_sent_to_sign_in(db):
    client = Client()
    for path in ("/org/", "/org/roles/", "/org/teams/", "/orgs/new"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
    for path in ("/org/members/add", "/org/members/1/role", "/org/leave", "/org/roles/new", "/org/teams/new"):
        response = client.post(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
    assert Membership.objects.count() == 0


def test_the_menu_links_the_organization_pages(browser, acme):
    page = _page(browser.get("/sandboxes/"))
    assert 'href="/org/"' in page and ">Organization<" in page
    page = _page(browser.get("/org/"))
    assert 'href="/org/roles/"' in page and 'href="/org/teams/"' in page and 'aria-current="page">Members<' in page


def test_owner_adds_a_member_changes_their_role_and_removes_them(browser, owner, acme):
    alice, bob = _user("alice"), _user("bob", "Bob@Example.com")
    page = _page(browser.get("/org/"))
    assert 'id="member-add"' in page and 'data-member="owner"' in page and 'id="org-name">Acme' in page

    response = browser.post("/org/members/add", {"org": "acme", "user": "alice", "role": "developer"}, follow=True)
    assert "alice added as developer." in _page(response)
    assert _membership(acme, "alice").role == "developer"
    assert 'data-member="alice"' in _page(response)
    # By email (any case), with another role.
    browser.post("/org/members/add", {"org": "acme", "user": "bob@example.com", "role": "viewer"})
    assert _membership(acme, "bob").role == "viewer"

    # Bad input: a message on the page, the input kept, nothing changed.
    for body, message in (
        ({"user": "", "role": "viewer"}, "Name the user: username or email."),
        ({"user": "nobody", "role": "viewer"}, "No user with this username or email. (user_not_found)"),
        ({"user": "alice", "role": "viewer"}, "already a member of this organization. (already_member)"),
        ({"user": "carol", "role": "wizard"}, "No role &#x27;wizard&#x27; in acme. (unknown_role)"),
    ):
        response = browser.post("/org/members/add", {"org": "acme", **body})
        page = _page(response)
        assert message in page, (body, page[page.find('class="messages"') :][:400])
        assert f'id="member-user" name="user" maxlength="254" required value="{body["user"]}"' in page
    assert Membership.objects.filter(org=acme).count() == 3

    membership = _membership(acme, "alice")
    response = browser.post(f"/org/members/{membership.pk}/role", {"org": "acme", "role": "admin"}, follow=True)
    assert "alice is now admin." in _page(response)
    membership.refresh_from_db()
    assert membership.role == "admin"
    assert "members.manage" in selectors.permissions_of(user=alice, org=acme)

    response = browser.post(f"/org/members/{membership.pk}/remove", {"org": "acme"}, follow=True)
    assert "alice removed from Acme" in _page(response)
    assert _membership(acme, "alice") is None and 'data-member="alice"' not in _page(response)
    assert selectors.permissions_of(user=alice, org=acme) == frozenset()
    assert bob  # still a member
    assert _membership(acme, "bob") is not None

    # A member of another organization is not found here.
    other = services.org_create(user=_user("zed"), name="Other", slug="other")
    theirs = _membership(other, "zed")
    assert browser.post(f"/org/members/{theirs.pk}/role", {"org": "acme", "role": "viewer"}).status_code == 404
    assert browser.post(f"/org/members/{theirs.pk}/remove", {"org": "acme"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == "owner"


def test_an_admin_cannot_make_an_owner_or_demote_one(owner, acme):
    admin = _user("admin")
    services.member_add(org=acme, user_ref="admin", role="admin")
    _user("dev")
    client = _signed_in(admin, acme)
    assert 'id="member-add"' in _page(client.get("/org/"))

    response = client.post("/org/members/add", {"org": "acme", "user": "dev", "role": "owner"})
    page = _page(response)
    assert "Only a member holding every permission of a role can give or take it" in page
    assert "(permission_denied)" in page and _membership(acme, "dev") is None

    owner_row = _membership(acme, "owner")
    response = client.post(f"/org/members/{owner_row.pk}/role", {"org": "acme", "role": "viewer"}, follow=True)
    assert "Only a member holding every permission of a role can give or take it" in _page(response)
    owner_row.refresh_from_db()
    assert owner_row.role == "owner"
    response = client.post(f"/org/members/{owner_row.pk}/remove", {"org": "acme"}, follow=True)
    assert "Only a member holding every permission" in _page(response)
    assert _membership(acme, "owner") is not None

    # What they hold, they may give; renaming the organization needs org.manage (a 403 page).
    client.post("/org/members/add", {"org": "acme", "user": "dev", "role": "developer"})
    assert _membership(acme, "dev").role == "developer"
    assert 'id="org-rename"' not in _page(client.get("/org/"))
    assert client.post("/org/rename", {"org": "acme", "name": "Mine", "slug": "mine"}).status_code == 403
    acme.refresh_from_db()
    assert (acme.name, acme.slug) == ("Acme", "acme")


def test_a_viewer_sees_the_members_but_may_not_change_them(owner, acme):
    viewer = _user("vic")
    services.member_add(org=acme, user_ref="vic", role="viewer")
    client = _signed_in(viewer, acme)
    page = _page(client.get("/org/"))
    assert 'data-member="owner"' in page and 'data-member="vic"' in page
    assert 'id="member-add"' not in page and "data-remove=" not in page and 'id="my-role">viewer<' in page
    assert 'id="role-create"' not in _page(client.get("/org/roles/"))
    assert 'id="team-create"' not in _page(client.get("/org/teams/"))

    _user("eve")
    owner_row = _membership(acme, "owner")
    for path, body in (
        ("/org/members/add", {"user": "eve", "role": "viewer"}),
        (f"/org/members/{owner_row.pk}/role", {"role": "viewer"}),
        (f"/org/members/{owner_row.pk}/remove", {}),
        ("/org/roles/new", {"name": "r", "permissions": ["sandboxes.read"]}),
        ("/org/teams/new", {"name": "t"}),
    ):
        response = client.post(path, {"org": "acme", **body})
        assert response.status_code == 403, path
        assert b"members.manage" in response.content, path
    assert _membership(acme, "eve") is None and _membership(acme, "owner").role == "owner"
    assert not Role.objects.filter(org=acme).exists() and not Team.objects.filter(org=acme).exists()
    assert client.get("/org/members/add").status_code == 405


def test_custom_roles_create_edit_and_delete_and_a_role_in_use_stays(browser, acme):
    page = _page(browser.get("/org/roles/"))
    for builtin in ("owner", "admin", "developer", "viewer", "billing"):
        assert f"<th>{builtin}</th>" in page
    assert "<code>org.delete</code>" in page and 'id="role-create"' in page

    body = {"org": "acme", "name": "support", "description": "Helps", "permissions": ["sandboxes.read", "audit.read"]}
    response = browser.post("/org/roles/new", body, follow=True)
    assert "Role support created." in _page(response) and 'id="role-support"' in _page(response)
    role = Role.objects.get(org=acme, name="support")
    assert role.permissions == ["audit.read", "sandboxes.read"] and role.description == "Helps"

    for bad, message in (
        ({"name": "Support Team"}, "Name: A name is 1 to 50 lowercase letters"),
        ({"name": "support"}, "(role_name_taken)"),
        ({"name": "owner"}, "owner is a built-in role. (role_name_taken)"),
        ({"name": "ops", "permissions": ["root"]}, "(unknown_permission)"),
    ):
        page = _page(browser.post("/org/roles/new", {**body, **bad}))
        assert message in page, bad
    assert Role.objects.filter(org=acme).count() == 1

    response = browser.post(
        "/org/roles/support/edit",
        {"org": "acme", "description": "Helps customers", "permissions": ["sandboxes.read", "billing.read"]},
        follow=True,
    )
    assert "Role support saved" in _page(response)
    role.refresh_from_db()
    assert role.permissions == ["billing.read", "sandboxes.read"] and role.description == "Helps customers"

    # Held by a member: deleting it is refused with a message naming them; then it goes.
    _user("sam")
    services.member_add(org=acme, user_ref="sam", role="support")
    assert selectors.permissions_of(user=_membership(acme, "sam").user, org=acme) == {"billing.read", "sandboxes.read"}
    response = browser.post("/org/roles/support/delete", {"org": "acme"}, follow=True)
    assert "Role support is in use by sam: give them another role first" in _page(response)
    assert "(role_in_use)" in _page(response) and Role.objects.filter(pk=role.pk).exists()
    sam = _membership(acme, "sam")
    browser.post(f"/org/members/{sam.pk}/role", {"org": "acme", "role": "viewer"})
    browser.post("/org/teams/new", {"org": "acme", "name": "helpdesk", "role": "support"})
    response = browser.post("/org/roles/support/delete", {"org": "acme"}, follow=True)
    assert "Role support is in use by team helpdesk" in _page(response) and Role.objects.filter(pk=role.pk).exists()
    browser.post("/org/teams/helpdesk/edit", {"org": "acme", "name": "helpdesk", "role": ""})
    response = browser.post("/org/roles/support/delete", {"org": "acme"}, follow=True)
    assert "Role support deleted." in _page(response) and not Role.objects.filter(pk=role.pk).exists()
    assert browser.post("/org/roles/support/delete", {"org": "acme"}).status_code == 404


def test_an_admin_gives_a_custom_role_only_permissions_they_hold(owner, acme):
    admin = _user("admin")
    services.member_add(org=acme, user_ref="admin", role="admin")
    client = _signed_in(admin, acme)
    page = _page(client.post("/org/roles/new", {"org": "acme", "name": "boss", "permissions": ["org.delete"]}))
    assert "Only a member holding every permission" in page and not Role.objects.filter(name="boss").exists()


def test_teams_create_add_members_who_inherit_the_role_rename_and_delete(browser, acme):
    alice = _user("alice")
    services.member_add(org=acme, user_ref="alice", role="viewer")
    assert "sandboxes.create" not in selectors.permissions_of(user=alice, org=acme)

    response = browser.post("/org/teams/new", {"org": "acme", "name": "backend", "role": "developer"}, follow=True)
    assert "Team backend created." in _page(response) and 'id="team-backend"' in _page(response)
    team = Team.objects.get(org=acme, name="backend")
    assert team.role == "developer"
    page = _page(browser.post("/org/teams/new", {"org": "acme", "name": "backend"}))
    assert "(team_name_taken)" in page
    page = _page(browser.post("/org/teams/new", {"org": "acme", "name": "Bad Name"}))
    assert "Name: A name is 1 to 50 lowercase letters" in page and Team.objects.filter(org=acme).count() == 1

    assert '<option value="alice">alice</option>' in _page(browser.get("/org/teams/"))  # may join
    response = browser.post("/org/teams/backend/members/add", {"org": "acme", "username": "alice"}, follow=True)
    assert "alice added to team backend." in _page(response)
    assert 'data-team-member="alice"' in _page(response)
    assert '<option value="alice">alice</option>' not in _page(response)  # in it already
    assert {"sandboxes.create", "sandboxes.exec"} <= selectors.permissions_of(user=alice, org=acme)
    assert "<code>backend</code>" in _page(browser.get("/org/"))  # the members list shows their teams
    # Someone not in the organization cannot join its team.
    _user("stranger")
    page = _page(browser.post("/org/teams/backend/members/add", {"org": "acme", "username": "stranger"}, follow=True))
    assert "stranger is not a member of acme. (member_not_found)" in page

    response = browser.post("/org/teams/backend/edit", {"org": "acme", "name": "platform", "role": ""}, follow=True)
    assert "Team platform saved." in _page(response)
    team.refresh_from_db()
    assert (team.name, team.role, team.custom_role) == ("platform", "", None)
    assert selectors.permissions_of(user=alice, org=acme) == {"sandboxes.read"}
    browser.post("/org/teams/platform/edit", {"org": "acme", "name": "platform", "role": "developer"})
    assert "sandboxes.create" in selectors.permissions_of(user=alice, org=acme)

    response = browser.post("/org/teams/platform/members/remove", {"org": "acme", "username": "alice"}, follow=True)
    assert "alice removed from team platform." in _page(response)
    assert "sandboxes.create" not in selectors.permissions_of(user=alice, org=acme)

    browser.post("/org/teams/platform/members/add", {"org": "acme", "username": "alice"})
    response = browser.post("/org/teams/platform/delete", {"org": "acme"}, follow=True)
    assert "Team platform deleted." in _page(response) and not Team.objects.filter(org=acme).exists()
    assert selectors.permissions_of(user=alice, org=acme) == {"sandboxes.read"}
    assert browser.post("/org/teams/platform/delete", {"org": "acme"}).status_code == 404


def test_the_last_owner_cannot_leave_and_a_member_can(browser, owner, acme):
    response = browser.post("/org/leave", {"org": "acme"}, follow=True)
    assert "An organization keeps at least one owner. (last_owner)" in _page(response)
    assert _membership(acme, "owner") is not None

    dev = _user("dev")
    services.member_add(org=acme, user_ref="dev", role="developer")
    client = _signed_in(dev, acme)
    assert 'id="org-leave"' in _page(client.get("/org/"))
    response = client.post("/org/leave", {"org": "acme"}, follow=True)
    page = _page(response)
    assert "You left Acme" in page and _membership(acme, "dev") is None
    assert SESSION_ORG not in client.session
    assert 'id="personal-note"' in page  # back in their personal organization


def test_pages_render_for_a_personal_organization(browser, owner):
    for path in PERSONAL_OR_SWITCHED:
        page = _page(browser.get(path))
        assert "it has no other members" in page and "personal</span>" in page, path
        assert 'id="org-leave"' not in page, path
    page = _page(browser.get("/org/"))
    assert 'id="member-add"' not in page and 'data-member="owner"' in page and 'id="my-role">owner<' in page
    _user("alice")
    personal = services.personal_org_ensure(user=owner)
    page = _page(browser.post("/org/members/add", {"org": personal.slug, "user": "alice", "role": "viewer"}))
    assert "A personal organization has no other members" in page and "(personal_org)" in page
    assert Membership.objects.filter(org=personal).count() == 1
    page = _page(browser.post("/org/leave", {"org": personal.slug}, follow=True))
    assert "(last_owner)" in page and Membership.objects.filter(org=personal).count() == 1


def test_create_an_organization_and_act_in_it(browser, owner):
    page = _page(browser.get("/orgs/new"))
    assert 'id="org-create"' in page
    response = browser.post("/orgs/new", {"name": "Beta Corp", "slug": ""})
    assert response.status_code == 302 and response["Location"] == "/org/"
    org = Organization.objects.get(name="Beta Corp")
    assert org.slug == "beta-corp" and _membership(org, "owner").role == "owner"
    assert browser.session[SESSION_ORG] == "beta-corp"
    page = _page(browser.get("/org/"))
    assert 'id="org-name">Beta Corp<' in page and "Organization Beta Corp created" in page
    assert 'name="org"' in page and 'id="member-add"' in page  # the switcher, now two organizations

    for body, message in (
        ({"name": "", "slug": ""}, "Give the organization a name."),
        ({"name": "x" * 101, "slug": ""}, "at most 100 characters"),
        ({"name": "Again", "slug": "beta-corp"}, "(org_slug_taken)"),
        ({"name": "Bad", "slug": "-bad-"}, "slug is 1 to 50 lowercase letters"),
    ):
        page = _page(browser.post("/orgs/new", body))
        assert message in page and 'id="org-errors"' in page, body
    assert Organization.objects.filter(personal_for__isnull=True).count() == 1


def test_rename_keeps_acting_in_the_organization(browser, acme):
    response = browser.post("/org/rename", {"org": "acme", "name": "Acme Inc", "slug": "acme-inc"}, follow=True)
    page = _page(response)
    assert "Organization renamed to Acme Inc (acme-inc)." in page and 'id="org-name">Acme Inc<' in page
    assert browser.session[SESSION_ORG] == "acme-inc"
    services.org_create(user=_user("zed"), name="Taken", slug="taken")
    page = _page(browser.post("/org/rename", {"org": "acme-inc", "name": "X", "slug": "taken"}, follow=True))
    assert "(org_slug_taken)" in page and 'id="org-name">Acme Inc<' in page
    acme.refresh_from_db()
    assert (acme.name, acme.slug) == ("Acme Inc", "acme-inc")
    assert "(validation_error)" in _page(browser.post("/org/rename", {"org": "acme-inc", "name": ""}, follow=True))


def test_a_form_shown_for_another_organization_changes_nothing(browser, owner, acme):
    """A form loaded before switching organization (in another tab) does not act on the new one."""
    _user("alice")
    personal = services.personal_org_ensure(user=owner)
    response = browser.post("/org/members/add", {"org": personal.slug, "user": "alice", "role": "viewer"}, follow=True)
    assert "You switched organization since this page was loaded: nothing changed." in _page(response)
    assert _membership(acme, "alice") is None
    response = browser.post("/org/leave", {"org": "other"}, follow=True)
    assert "nothing changed" in _page(response) and _membership(acme, "owner") is not None


# ---- invitations ----


def _pending(org) -> list[str]:
    return list(selectors.invitation_list(org=org).values_list("email", flat=True))


def test_invite_by_email_resend_and_revoke(browser, owner, acme, mailoutbox, django_capture_on_commit_callbacks):
    page = _page(browser.get("/org/"))
    assert 'id="invite"' in page and 'id="no-invitations"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/org/invitations/new", {"org": "acme", "email": "Carol@Example.com", "role": "viewer"})
    assert response.status_code == 302 and response["Location"] == "/org/"
    assert _pending(acme) == ["carol@example.com"]
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["carol@example.com"]
    link = re.search(r"http://testserver/invitations/\S+", mailoutbox[0].body)
    assert link, mailoutbox[0].body
    page = _page(browser.get("/org/"))
    assert "Invitation sent to carol@example.com as viewer." in page
    row = page[page.index('data-invitation="carol@example.com"') :]
    row = row[: row.index("</tr>")]
    assert "<td>viewer</td>" in row and "owner" in row and "data-resend" in row and "data-revoke" in row
    invitation = selectors.invitation_list(org=acme).get()
    assert f'<time datetime="{invitation.expires_at.isoformat()}">' in row

    # The address again, with another role: the same invitation, sent anew.
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            "/org/invitations/new", {"org": "acme", "email": "carol@example.com", "role": "developer"}, follow=True
        )
    assert "carol@example.com was invited already: sent again as developer" in _page(response)
    assert len(mailoutbox) == 2 and _pending(acme) == ["carol@example.com"]
    invitation.refresh_from_db()
    assert invitation.role == "developer"

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"/org/invitations/{invitation.pk}/resend", {"org": "acme"}, follow=True)
    assert "Invitation sent again to carol@example.com" in _page(response)
    assert len(mailoutbox) == 3 and mailoutbox[2].to == ["carol@example.com"]

    # Bad input: a message, the input kept, nothing sent.
    _user("dora")
    services.member_add(org=acme, user_ref="dora", role="viewer")
    for body, message in (
        ({"email": "not-an-address", "role": "viewer"}, "Enter a valid email address."),
        ({"email": "dora@example.com", "role": "viewer"}, "(already_member)"),
        ({"email": "eve@example.com", "role": "wizard"}, "(unknown_role)"),
    ):
        page = _page(browser.post("/org/invitations/new", {"org": "acme", **body}))
        assert message in page, body
        assert f'name="email" type="email" maxlength="254" required value="{body["email"]}"' in page
    assert _pending(acme) == ["carol@example.com"] and len(mailoutbox) == 3

    response = browser.post(f"/org/invitations/{invitation.pk}/revoke", {"org": "acme"}, follow=True)
    page = _page(response)
    assert "Invitation to carol@example.com revoked" in page and 'data-invitation="carol@example.com"' not in page
    assert _pending(acme) == []
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert Client().get(link.group(0).removeprefix("http://testserver")).status_code == 404  # the link stopped working
    assert browser.post(f"/org/invitations/{invitation.pk}/revoke", {"org": "acme"}).status_code == 404
    assert browser.post(f"/org/invitations/{invitation.pk}/resend", {"org": "acme"}).status_code == 404


def test_invitations_follow_the_members_rules(owner, acme, mailoutbox):
    admin = _user("admin")
    services.member_add(org=acme, user_ref="admin", role="admin")
    client = _signed_in(admin, acme)
    page = _page(client.post("/org/invitations/new", {"org": "acme", "email": "boss@example.com", "role": "owner"}))
    assert "Only a member holding every permission of a role can give or take it" in page
    assert "(permission_denied)" in page and _pending(acme) == []
    # The owner's invitation to an owner: the admin may neither resend nor revoke it.
    invitation, _ = services.invitation_create(
        org=acme, email="boss@example.com", role="owner", base_url="http://testserver/", by=owner
    )
    for action in ("resend", "revoke"):
        page = _page(client.post(f"/org/invitations/{invitation.pk}/{action}", {"org": "acme"}, follow=True))
        assert "(permission_denied)" in page, action
    assert _pending(acme) == ["boss@example.com"]

    # A viewer sees no invitations and may not invite (a 403 page naming members.manage).
    vic = _user("vic")
    services.member_add(org=acme, user_ref="vic", role="viewer")
    viewer = _signed_in(vic, acme)
    page = _page(viewer.get("/org/"))
    assert 'id="invite"' not in page and 'id="invitation-list"' not in page and "boss@example.com" not in page
    for path in ("/org/invitations/new", f"/org/invitations/{invitation.pk}/resend"):
        response = viewer.post(path, {"org": "acme", "email": "x@example.com", "role": "viewer"})
        assert response.status_code == 403 and b"members.manage" in response.content, path
    # A form shown for another organization changes nothing.
    response = client.post(f"/org/invitations/{invitation.pk}/revoke", {"org": "other"}, follow=True)
    assert "nothing changed" in _page(response) and _pending(acme) == ["boss@example.com"]


def test_a_personal_organization_invites_nobody(browser, owner):
    page = _page(browser.get("/org/"))
    assert 'id="invite"' not in page and 'id="invitation-list"' not in page
    personal = services.personal_org_ensure(user=owner)
    body = {"org": personal.slug, "email": "a@example.com", "role": "viewer"}
    page = _page(browser.post("/org/invitations/new", body))
    assert "(personal_org)" in page and not selectors.invitation_list(org=personal).exists()
