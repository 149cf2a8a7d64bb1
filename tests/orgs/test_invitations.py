"""Invitations to an organization by email: the API that sends them, the signed link's page in the
browser (sign in, accept), the API accept, and every way a link stops working."""

import re
import socket
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.orgs import services, signals, tokens
from apps.orgs.models import Invitation, Membership
from tests.conftest import _client

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver/invitations/(\S+)")


def _session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _user(name: str, email: str = ""):
    return get_user_model().objects.create_user(username=name, password=f"pw-{name}", email=email)


@pytest.fixture
def acme(owner):
    """`acme`, owned by `owner`, with an admin and a viewer."""
    org = services.org_create(user=owner, name="Acme Labs", slug="acme")
    users = {"owner": owner}
    for role in ("admin", "viewer"):
        users[role] = _user(f"{role}-user", f"{role}@acme.test")
        services.member_add(org=org, user_ref=users[role].username, role=role)
    return org, users


@pytest.fixture
def invite(django_capture_on_commit_callbacks):
    """POSTs an invitation as `client` with its email sent (on commit, as in a served request)."""

    def post(client, email, role="developer", slug="acme"):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/api/v1/orgs/{slug}/invitations", {"email": email, "role": role}, format="json")

    return post


def _token_of(message) -> str:
    found = LINK.search(message.body)
    assert found, message.body
    return found.group(1)


def _csrf_post(client: Client, path: str, data: dict | None = None):
    """A form POST as a browser sends it: with the CSRF cookie's token."""
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_an_invitation_is_emailed_and_accepted_through_its_link_after_signing_in(
    acme, invite, django_capture_on_commit_callbacks
):
    org, users = acme
    newcomer = _user("newcomer", "New.Comer@Example.test")
    services.personal_org_ensure(user=newcomer)  # two organizations after: the switcher shows
    made = invite(_session(users["owner"]), "new.comer@example.test", "developer")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["id"].startswith("inv_") and body["email"] == "new.comer@example.test"
    assert (body["role"], body["invitedBy"], body["expired"]) == ("developer", "owner", False)
    invitation = Invitation.objects.get(pk=body["id"])
    assert invitation.expires_at - invitation.created_at >= timedelta(days=7) - timedelta(seconds=5)
    # One plain-text email with the link; the token it carries is stored nowhere.
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.comer@example.test"]
    assert message.subject == "owner invited you to Acme Labs on VibeBox"
    assert "Acme Labs" in message.body and "as developer" in message.body and not message.alternatives
    token = _token_of(message)
    assert token not in str(list(Invitation.objects.values()))
    link = f"/invitations/{token}"

    browser = Client(enforce_csrf_checks=True)
    signed_out = browser.get(link)
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/login/?next=")
    login_page = browser.get(signed_out["Location"])
    assert login_page.status_code == 200 and link in login_page.content.decode()  # the form's `next`
    signed_in = _csrf_post(browser, "/login/", {"username": "newcomer", "password": "pw-newcomer", "next": link})
    assert signed_in.status_code == 302 and signed_in["Location"] == link

    page = browser.get(link)
    html = page.content.decode()
    assert page.status_code == 200
    assert "Join Acme Labs" in html and "developer" in html and "owner" in html and "Accept" in html
    assert not Membership.objects.filter(org=org, user=newcomer).exists()  # looking is not accepting

    changed = []
    signals.membership_changed.connect(receiver := lambda **kw: changed.append((kw["org"], kw["user"])))
    try:
        assert browser.post(link).status_code == 403  # no CSRF token: refused, nothing done
        assert not Membership.objects.filter(org=org, user=newcomer).exists()
        with django_capture_on_commit_callbacks(execute=True):
            accepted = _csrf_post(browser, link)
    finally:
        signals.membership_changed.disconnect(receiver)
    assert accepted.status_code == 302 and accepted["Location"] == "/sandboxes/"
    assert Membership.objects.get(org=org, user=newcomer).role_name == "developer"
    invitation.refresh_from_db()
    assert invitation.accepted_by == newcomer and invitation.accepted_at is not None
    assert changed == [(org, newcomer)]
    assert browser.session["vibebox_org"] == "acme"  # the dashboard now acts in acme
    assert 'value="acme" selected' in browser.get("/sandboxes/").content.decode()
    # A second click lands in the organization again; no longer pending, the invitation is not listed.
    assert _csrf_post(browser, link)["Location"] == "/sandboxes/"
    assert _session(users["owner"]).get("/api/v1/orgs/acme/invitations").json() == []


def test_a_user_with_another_email_cannot_accept(acme, invite, settings):
    org, users = acme
    made = invite(_session(users["admin"]), "alice@example.test", "viewer")
    token = _token_of(mail.outbox[0])
    mallory = _user("mallory", "mallory@example.test")
    browser = Client()
    browser.force_login(mallory)
    page = browser.get(f"/invitations/{token}")
    html = page.content.decode()
    assert page.status_code == 403 and 'data-code="invitation_email_mismatch"' in html
    assert "a***@example.test" in html and "alice@example.test" not in html and "Acme" not in html
    assert browser.post(f"/invitations/{token}").status_code == 403
    refused = _session(mallory).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "invitation_email_mismatch"
    nameless = _user("nameless")  # no email at all: no match either
    assert _session(nameless).post("/api/v1/invitations/accept", {"token": token}, format="json").status_code == 403
    assert not Membership.objects.filter(org=org, user__in=[mallory, nameless]).exists()
    # An operator may let anyone holding the link accept it.
    settings.VIBEBOX_INVITATION_ANY_EMAIL = True
    joined = _session(mallory).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert joined.status_code == 200 and joined.json()["slug"] == "acme" and joined.json()["role"] == "viewer"
    assert Invitation.objects.get(pk=made.json()["id"]).accepted_by == mallory


def test_an_expired_invitation_is_refused_until_sent_again(acme, invite, django_capture_on_commit_callbacks):
    org, users = acme
    bob = _user("bob", "bob@example.test")
    made = invite(_session(users["owner"]), "bob@example.test")
    token = _token_of(mail.outbox[0])
    Invitation.objects.filter(pk=made.json()["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    anonymous = Client().get(f"/invitations/{token}")  # no need to sign in to learn it is dead
    assert anonymous.status_code == 410 and 'data-code="invitation_expired"' in anonymous.content.decode()
    browser = Client()
    browser.force_login(bob)
    assert browser.post(f"/invitations/{token}").status_code == 410
    refused = _session(bob).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert refused.status_code == 410 and refused.json()["error"]["code"] == "invitation_expired"
    listed = _session(users["owner"]).get("/api/v1/orgs/acme/invitations").json()
    assert [(item["id"], item["expired"]) for item in listed] == [(made.json()["id"], True)]
    assert not Membership.objects.filter(org=org, user=bob).exists()
    # Sent again: a fresh expiry, the same link works.
    with django_capture_on_commit_callbacks(execute=True):
        resent = _session(users["owner"]).post(f"/api/v1/orgs/acme/invitations/{made.json()['id']}/resend")
    assert resent.status_code == 200 and resent.json()["expired"] is False
    assert _token_of(mail.outbox[1]) == token
    assert _session(bob).post("/api/v1/invitations/accept", {"token": token}, format="json").status_code == 200
    assert Membership.objects.get(org=org, user=bob).role == "developer"


def test_a_changed_or_foreign_token_is_not_an_invitation(acme, invite):
    org, users = acme
    carol = _user("carol", "carol@example.test")
    made = invite(_session(users["owner"]), "carol@example.test")
    token = _token_of(mail.outbox[0])
    invitation_id = made.json()["id"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    unsalted = signing.dumps({"invitation": invitation_id})  # signed by this server, not as an invitation
    other_id = tokens.invitation_token(Invitation(pk=invitation_id[:-1] + "0"))  # well signed, no such id
    browser = Client()
    browser.force_login(carol)
    for bad in (flipped, unsalted, other_id, "nonsense", invitation_id):
        page = browser.get(f"/invitations/{bad}")
        assert page.status_code == 404 and 'data-code="invitation_not_found"' in page.content.decode(), bad
        assert Client().get(f"/invitations/{bad}").status_code == 404  # signed out: the same page, no sign-in
        answer = _session(carol).post("/api/v1/invitations/accept", {"token": bad}, format="json")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "invitation_not_found", bad
    assert not Membership.objects.filter(org=org, user=carol).exists()
    assert browser.get(f"/invitations/{token}").status_code == 200  # the real one still works


def test_a_revoked_invitation_cannot_be_accepted(acme, invite):
    org, users = acme
    dave = _user("dave", "dave@example.test")
    owner = _session(users["owner"])
    made = invite(owner, "dave@example.test")
    token = _token_of(mail.outbox[0])
    path = f"/api/v1/orgs/acme/invitations/{made.json()['id']}"
    assert _session(users["viewer"]).delete(path).status_code == 403
    assert owner.delete(path).status_code == 204
    assert owner.get("/api/v1/orgs/acme/invitations").json() == []
    again = owner.delete(path)
    assert again.status_code == 404 and again.json()["error"]["code"] == "invitation_not_found"
    assert owner.post(f"{path}/resend").status_code == 404
    browser = Client()
    browser.force_login(dave)
    assert browser.get(f"/invitations/{token}").status_code == 404
    assert browser.post(f"/invitations/{token}").status_code == 404
    refused = _session(dave).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "invitation_not_found"
    assert not Membership.objects.filter(org=org, user=dave).exists()
    # The address may be invited anew: a new invitation, a new link.
    renewed = invite(owner, "dave@example.test")
    assert renewed.status_code == 201 and renewed.json()["id"] != made.json()["id"]
    assert _token_of(mail.outbox[1]) != token


def test_who_may_invite_and_to_what(acme, invite, outsider, make_key):
    org, users = acme
    admin = _session(users["admin"])
    promoted = invite(admin, "boss@example.test", "owner")  # an admin does not hold every owner permission
    assert promoted.status_code == 403 and promoted.json()["error"]["details"]["permission"] == "billing.manage"
    assert invite(admin, "dev@example.test", "developer").status_code == 201
    viewer = invite(_session(users["viewer"]), "x@example.test")
    assert viewer.status_code == 403 and viewer.json()["error"]["details"]["permission"] == "members.manage"
    assert _session(users["viewer"]).get("/api/v1/orgs/acme/invitations").status_code == 403
    foreign = invite(_session(outsider), "x@example.test")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "org_not_found"
    assert _session(outsider).get("/api/v1/orgs/acme/invitations").status_code == 404
    assert APIClient().get("/api/v1/orgs/acme/invitations").status_code == 401
    member = invite(admin, "VIEWER@acme.test", "admin")
    assert member.status_code == 409 and member.json()["error"]["code"] == "already_member"
    personal = invite(_session(users["owner"]), "x@example.test", slug=services.personal_org_ensure(user=outsider).slug)
    assert personal.status_code == 404  # not the owner's
    own = services.personal_org_ensure(user=users["owner"]).slug
    assert invite(_session(users["owner"]), "x@example.test", slug=own).json()["error"]["code"] == "personal_org"
    for body, code in [
        ({"email": "not an email", "role": "viewer"}, "validation_error"),
        ({"email": "x@example.test", "role": "nope"}, "unknown_role"),
        ({"email": "x@example.test", "role": "viewer", "name": "X"}, "unknown_field"),
        ({"role": "viewer"}, "validation_error"),
    ]:
        answer = admin.post("/api/v1/orgs/acme/invitations", body, format="json")
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code, (body, answer.content)
    # A key writes only with orgs:manage, in its own organization.
    reader = _client(make_key(users["admin"], ["sandboxes:read"], org=org)[1])
    assert reader.get("/api/v1/orgs/acme/invitations").status_code == 200
    assert invite(reader, "y@example.test").json()["error"]["code"] == "insufficient_scope"
    manager = _client(make_key(users["admin"], ["orgs:manage"], org=org)[1])
    assert invite(manager, "y@example.test").status_code == 201
    assert [item["email"] for item in admin.get("/api/v1/orgs/acme/invitations").json()] == [
        "dev@example.test", "y@example.test",
    ]  # fmt: skip
    assert len(mail.outbox) == 2  # nothing refused sent anything


def test_inviting_an_address_again_sends_the_same_invitation_anew(acme, invite, django_capture_on_commit_callbacks):
    org, users = acme
    owner = _session(users["owner"])
    first = invite(owner, "erin@example.test", "viewer")
    assert first.status_code == 201
    Invitation.objects.filter(pk=first.json()["id"]).update(expires_at=timezone.now() + timedelta(hours=1))
    again = invite(owner, "Erin@Example.test", "developer")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["role"] == "developer" and again.json()["expiresAt"] > first.json()["expiresAt"]
    assert Invitation.objects.filter(org=org).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        resent = owner.post(f"/api/v1/orgs/acme/invitations/{first.json()['id']}/resend")
    assert resent.status_code == 200 and resent.json()["sentAt"] >= again.json()["sentAt"]
    assert [message.to for message in mail.outbox] == [["erin@example.test"]] * 3
    assert len({_token_of(message) for message in mail.outbox}) == 1  # one invitation, one link
    assert "as developer" in mail.outbox[2].body
    # An admin may neither resend, revoke nor re-role an invitation to a role above theirs.
    boss = invite(owner, "boss@example.test", "owner").json()["id"]
    admin = _session(users["admin"])
    assert admin.post(f"/api/v1/orgs/acme/invitations/{boss}/resend").status_code == 403
    assert admin.delete(f"/api/v1/orgs/acme/invitations/{boss}").status_code == 403
    assert invite(admin, "boss@example.test", "viewer").status_code == 403
    assert Invitation.objects.get(pk=boss).role == "owner"
    assert admin.post("/api/v1/orgs/acme/invitations/inv_nope/resend").json()["error"]["code"] == (
        "invitation_not_found"
    )


def test_accepting_through_the_api(acme, invite, make_key):
    org, users = acme
    role = services.role_create(org=org, name="ops", permissions=["sandboxes.read", "sandboxes.exec"])
    frank = _user("frank", "frank@example.test")
    made = invite(_session(users["owner"]), "frank@example.test", "ops")
    assert made.status_code == 201 and made.json()["role"] == "ops"
    token = _token_of(mail.outbox[0])
    # A pending invitation holds its custom role like a member does.
    assert _session(users["owner"]).delete("/api/v1/orgs/acme/roles/ops").json()["error"]["code"] == "role_in_use"
    assert APIClient().post("/api/v1/invitations/accept", {"token": token}, format="json").status_code == 401
    personal_key = _client(make_key(frank, ["sandboxes:read"])[1])
    lacking = personal_key.post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert lacking.status_code == 403 and lacking.json()["error"]["code"] == "insufficient_scope"
    unknown = _session(frank).post("/api/v1/invitations/accept", {"token": token, "x": 1}, format="json")
    assert unknown.status_code == 400
    key = _client(make_key(frank, ["orgs:manage"])[1])
    joined = key.post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert joined.status_code == 200, joined.content
    assert joined.json()["slug"] == "acme" and joined.json()["role"] == "ops"
    assert sorted(joined.json()["permissions"]) == ["sandboxes.exec", "sandboxes.read"]
    assert Membership.objects.get(org=org, user=frank).custom_role == role
    used = _session(frank).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert used.status_code == 410 and used.json()["error"]["code"] == "invitation_accepted"
    page = Client()
    page.force_login(users["viewer"])
    assert page.get(f"/invitations/{token}").status_code == 410  # used by someone else
    # Accepted, it no longer holds the role: the role is deleted once its member is another's.
    Membership.objects.filter(org=org, user=frank).update(custom_role=None, role="viewer")
    assert _session(users["owner"]).delete("/api/v1/orgs/acme/roles/ops").status_code == 204
    assert not Invitation.objects.filter(pk=made.json()["id"]).exists()


def test_a_member_already_is_told_so(acme, invite):
    org, users = acme
    grace = _user("grace", "grace@example.test")
    made = invite(_session(users["owner"]), "grace@example.test", "viewer")
    token = _token_of(mail.outbox[0])
    services.member_add(org=org, user_ref="grace", role="developer")  # added directly meanwhile
    refused = _session(grace).post("/api/v1/invitations/accept", {"token": token}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "already_member"
    browser = Client()
    browser.force_login(grace)
    page = browser.get(f"/invitations/{token}")
    assert page.status_code == 409 and "Go to Acme Labs" in page.content.decode()
    assert Membership.objects.get(org=org, user=grace).role == "developer"
    assert Invitation.objects.get(pk=made.json()["id"]).pending


def test_the_link_uses_the_public_url_and_a_mail_server_down_loses_nothing(acme, invite, settings, caplog):
    _org, users = acme
    settings.VIBEBOX_PUBLIC_URL = "https://vibebox.example.com"
    assert invite(_session(users["owner"]), "heidi@example.test").status_code == 201
    assert "https://vibebox.example.com/invitations/" in mail.outbox[0].body
    # A real SMTP connection to a port where nothing listens: the invitation stands, the failure is logged.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    made = invite(_session(users["owner"]), "ivan@example.test")
    assert made.status_code == 201 and Invitation.objects.get(pk=made.json()["id"]).pending
    assert "Could not send the invitation email to ivan@example.test" in caplog.text


def test_the_admin_lists_invitations_without_their_links(acme, invite, client):
    _org, users = acme
    made = invite(_session(users["owner"]), "judy@example.test", "viewer").json()
    token = _token_of(mail.outbox[0])
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root-1234"))
    listing = client.get("/admin/orgs/invitation/")
    assert listing.status_code == 200 and b"judy@example.test" in listing.content
    change = client.get(f"/admin/orgs/invitation/{made['id']}/change/")
    assert change.status_code == 200 and token.encode() not in change.content
    assert client.get("/admin/orgs/invitation/add/").status_code == 403  # sent through the API only
