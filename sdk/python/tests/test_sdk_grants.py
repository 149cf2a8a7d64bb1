"""Sharing a sandbox (grants) through the SDK, sync and async, against the live server: a sandbox
of an organization shared with a member whose role alone does not let them see it (`billing`), and
with a team."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from vibebox_sdk import (
    AsyncVibeBox,
    Grant,
    GrantNotFoundError,
    MemberNotFoundError,
    PermissionDeniedError,
    SandboxNotFoundError,
    TeamNotFoundError,
    ValidationError,
    VibeBox,
)

SCOPES = ["sandboxes:read", "sandboxes:write", "execute", "orgs:manage", "audit:read"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def shared_org(vb: VibeBox, server, role: str = "billing") -> tuple[str, VibeBox, str, VibeBox]:
    """A new organization, its owner's client, a member with `role` and the member's client (a key
    of theirs made in the organization)."""
    slug, member = unique("share"), unique("grantee")
    own_key = server.create_key(member)
    vb.orgs.create("Sharing Test", slug=slug)
    owner = VibeBox(api_key=vb.keys.create("share owner", org=slug, scopes=SCOPES).key, base_url=server.url)
    owner.orgs.members(slug).add(member, role=role)
    with VibeBox(api_key=own_key, base_url=server.url) as own:
        key = own.keys.create("in share org", org=slug, scopes=SCOPES).key
    return slug, owner, member, VibeBox(api_key=key, base_url=server.url)


def test_share_with_a_member_and_a_team_then_unshare(vb, server, outsider_key):
    slug, owner, member, grantee = shared_org(vb, server)
    box = owner.create("python-3", auto_start=False)  # grants need no running container
    try:
        assert box.grants() == []
        with pytest.raises(PermissionDeniedError) as denied:  # billing: no sandboxes.read, and no grant yet
            grantee.get(box.id)
        assert denied.value.details["permission"] == "sandboxes.read"

        grant = box.share(user=member, access="read")
        assert isinstance(grant, Grant) and grant.id.startswith("grt_")
        assert (grant.user, grant.team, grant.access, grant.created_by) == (member, None, "read", owner_name(owner))
        assert grant.created_at and grant.raw["createdAt"] == grant.created_at
        seen = grantee.get(box.id)  # the grant lets them read it, and its grants
        assert seen.name == box.name and [g.id for g in seen.grants()] == [grant.id]
        with pytest.raises(PermissionDeniedError):  # read is not manage
            seen.share(user=member, access="manage")

        again = box.share(user=member, access="use")  # one grant per member: its level changes
        assert (again.id, again.access) == (grant.id, "use")

        owner.orgs.teams(slug).create("readers")
        team_grant = box.share(team="readers", access="manage")
        assert (team_grant.user, team_grant.team, team_grant.access) == (None, "readers", "manage")
        assert [(g.user, g.team, g.access) for g in box.grants()] == [
            (member, None, "use"),
            (None, "readers", "manage"),
        ]

        with pytest.raises(MemberNotFoundError):  # a user, but not a member of the organization
            box.share(user="outsider", access="read")
        with pytest.raises(TeamNotFoundError):
            box.share(team="no-such-team", access="read")
        with pytest.raises(ValidationError):  # both, or neither, of user and team
            box.share(user=member, team="readers", access="read")
        with pytest.raises(ValidationError):
            box.share(user=member, access="own")

        seen.unshare(grant)  # a grantee may give up their own grant
        with pytest.raises(PermissionDeniedError):
            grantee.get(box.id)
        with pytest.raises(GrantNotFoundError) as missing:
            box.unshare(grant.id)
        assert missing.value.status == 404 and missing.value.code == "grant_not_found"
        box.unshare(team_grant)
        assert box.grants() == []
        with pytest.raises(SandboxNotFoundError):  # another organization's sandbox is a 404
            VibeBox(api_key=outsider_key, base_url=server.url).get(box.id).grants()
    finally:
        box.destroy()
        owner.orgs.delete(slug)
        owner.close()
        grantee.close()


def owner_name(client: VibeBox) -> str:
    """The username behind a client's key."""
    slug = client.orgs.list()[0].slug
    return next(m.username for m in client.orgs.members(slug).list() if m.role == "owner")


def test_async_sandbox_has_the_same_grants(vb, server):
    slug, owner, member, grantee = shared_org(vb, server)
    owner.close()
    grantee.close()
    owner_key = vb.keys.create("async share owner", org=slug, scopes=SCOPES).key

    async def scenario() -> None:
        async with AsyncVibeBox(api_key=owner_key, base_url=server.url) as acme:
            box = await acme.create("python-3", auto_start=False)
            try:
                grant = await box.share(user=member, access="manage")
                assert (grant.user, grant.access) == (member, "manage")
                assert [g.id for g in await box.grants()] == [grant.id]
                await box.unshare(grant)
                assert await box.grants() == []
                with pytest.raises(GrantNotFoundError):
                    await box.unshare(grant)
            finally:
                await box.destroy()
                await acme.orgs.delete(slug)

    asyncio.run(scenario())
