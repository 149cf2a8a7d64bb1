"""Invitations through the SDK, sync and async, against the live server. The server emails the link
(its console backend, here to nowhere); the token is the invitation's id signed with the server's
secret, so the tests get it from the server's own code (apps/orgs/tokens.py) run with `manage.py
shell` against the server's database and data directory, as the email would have carried it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from vibebox_sdk import (
    AsyncVibeBox,
    ConflictError,
    GoneError,
    Invitation,
    InvitationAcceptedError,
    InvitationEmailMismatchError,
    InvitationExpiredError,
    InvitationNotFoundError,
    Organization,
    PermissionDeniedError,
    VibeBox,
)

SCOPES = ["sandboxes:read", "orgs:manage"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def shell(server, code: str) -> str:
    """Runs Python in the server's Django (`manage.py shell`); answers the last line it printed
    (Django's shell may say what it imported first)."""
    lines = server.manage("shell", "-c", code).strip().splitlines()
    return lines[-1] if lines else ""


def invitation_token(server, invitation_id: str) -> str:
    """The token of the invitation's link, made by the server's code with the server's secret."""
    return shell(
        server,
        "from types import SimpleNamespace; from apps.orgs.tokens import invitation_token; "
        f"print(invitation_token(SimpleNamespace(pk={invitation_id!r})))",
    )


def set_email(server, username: str, email: str) -> None:
    shell(
        server,
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.filter(username={username!r}).update(email={email!r})",
    )


def expire(server, invitation_id: str) -> None:
    shell(
        server,
        "from datetime import timedelta; from django.utils import timezone; from apps.orgs.models import Invitation; "
        f"Invitation.objects.filter(pk={invitation_id!r}).update(expires_at=timezone.now() - timedelta(minutes=1))",
    )


@pytest.fixture
def inviting(vb, server):
    """An organization (slug, its owner's client) and a user with a key of theirs and an email:
    (username, their client, email)."""
    slug, name = unique("invite"), unique("invitee")
    email = f"{name}@Example.com"
    invitee = VibeBox(api_key=server.create_key(name), base_url=server.url)
    set_email(server, name, email.lower())
    vb.orgs.create("Invite Test", slug=slug)
    owner = VibeBox(api_key=vb.keys.create("invite owner", org=slug, scopes=SCOPES).key, base_url=server.url)
    yield slug, owner, name, invitee, email
    owner.orgs.delete(slug)
    owner.close()
    invitee.close()


def test_invite_resend_revoke_and_accept(inviting, server):
    slug, owner, name, invitee, email = inviting
    invitations = owner.orgs.invitations(slug)
    assert invitations.list() == []
    invitation = invitations.create(email, role="developer")
    assert isinstance(invitation, Invitation) and invitation.id.startswith("inv_")
    assert (invitation.email, invitation.role, invitation.expired) == (email.lower(), "developer", False)
    assert invitation.invited_by and invitation.expires_at and invitation.sent_at
    assert [i.id for i in invitations.list()] == [invitation.id]
    again = invitations.create(email.upper(), role="viewer")  # one pending invitation per address
    assert (again.id, again.role) == (invitation.id, "viewer")
    resent = invitations.resend(invitation)
    assert resent.id == invitation.id and resent.sent_at >= again.sent_at

    token = invitation_token(server, invitation.id)
    invitations.revoke(invitation.id)
    assert invitations.list() == []
    with pytest.raises(InvitationNotFoundError):  # the link stopped working
        invitee.invitations.accept(token)
    with pytest.raises(InvitationNotFoundError) as gone:
        invitations.resend(invitation)
    assert gone.value.status == 404 and gone.value.code == "invitation_not_found"
    with pytest.raises(InvitationNotFoundError):
        invitations.revoke(invitation)

    fresh = invitations.create(email, role="developer")
    token = invitation_token(server, fresh.id)
    with pytest.raises(InvitationNotFoundError):  # a changed token
        invitee.invitations.accept(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(InvitationEmailMismatchError) as mismatch:  # the owner's email is not the invited one
        owner.invitations.accept(token)
    assert isinstance(mismatch.value, PermissionDeniedError) and mismatch.value.status == 403

    expire(server, fresh.id)
    assert invitations.list()[0].expired is True
    with pytest.raises(InvitationExpiredError) as expired:
        invitee.invitations.accept(token)
    assert isinstance(expired.value, GoneError) and expired.value.status == 410
    invitations.resend(fresh)  # renewed, the same link

    joined = invitee.invitations.accept(f"{server.url}/invitations/{token}")  # the whole link works too
    assert isinstance(joined, Organization) and (joined.slug, joined.role) == (slug, "developer")
    assert {m.username: m.role for m in owner.orgs.members(slug).list()}[name] == "developer"
    assert invitations.list() == []
    with pytest.raises(InvitationAcceptedError) as used:
        invitee.invitations.accept(token)
    assert isinstance(used.value, GoneError) and (used.value.status, used.value.code) == (410, "invitation_accepted")
    with pytest.raises(ConflictError) as member:  # a member's address
        invitations.create(email, role="viewer")
    assert member.value.code == "already_member"


def test_async_client_has_the_same_invitations(inviting, server, vb):
    slug, _, name, _, email = inviting
    owner_key = vb.keys.create("async invite owner", org=slug, scopes=SCOPES).key
    invitee_key = server.create_key(name)

    async def scenario() -> None:
        async with (
            AsyncVibeBox(api_key=owner_key, base_url=server.url) as acme,
            AsyncVibeBox(api_key=invitee_key, base_url=server.url) as invitee,
        ):
            invitations = acme.orgs.invitations(slug)
            invitation = await invitations.create(email, role="viewer")
            assert [i.email for i in await invitations.list()] == [email.lower()]
            assert (await invitations.resend(invitation.id)).id == invitation.id
            token = await asyncio.to_thread(invitation_token, server, invitation.id)
            joined = await invitee.invitations.accept(token)
            assert (joined.slug, joined.role) == (slug, "viewer")
            with pytest.raises(InvitationAcceptedError):
                await invitee.invitations.accept(token)
            other = await invitations.create(f"x-{email}", role="viewer")
            await invitations.revoke(other)
            with pytest.raises(InvitationNotFoundError):
                await invitations.revoke(other)

    asyncio.run(scenario())
