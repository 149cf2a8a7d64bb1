"""Organizations and their members through the SDK (sync and async), against the live server: a
key sees only the organization it acts in, so each new organization is managed with a key made in it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from vibebox_sdk import (
    ApiKey,
    AsyncVibeBox,
    AuthenticationError,
    ConflictError,
    LastOwnerError,
    Member,
    MemberNotFoundError,
    Organization,
    OrgNotFoundError,
    UserNotFoundError,
    ValidationError,
    VibeBox,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def member_name(server) -> str:
    """Another user of the server (createapikey makes the user), to add as a member."""
    name = unique("member")
    server.create_key(name)
    return name


def test_a_key_lists_its_personal_organization(vb):
    orgs = vb.orgs.list()
    assert len(orgs) == 1, orgs  # a key sees only the organization it acts in
    own = orgs[0]
    assert isinstance(own, Organization)
    assert own.personal and own.role == "owner" and {"org.manage", "members.manage"} <= set(own.permissions)
    assert own.raw["createdAt"] == own.created_at
    assert vb.orgs.get(own).slug == own.slug
    with pytest.raises(ConflictError) as personal:  # no other members in a personal organization
        vb.orgs.members(own).add("anyone", role="viewer")
    assert personal.value.code == "personal_org"
    with pytest.raises(OrgNotFoundError) as missing:
        vb.orgs.get(unique("no-such-org"))
    assert missing.value.status == 404


def test_organization_members_roles_and_its_keys(vb, server, member_name):
    slug = unique("acme")
    org = vb.orgs.create("Acme Test", slug=slug)
    assert (org.slug, org.name, org.role, org.personal) == (slug, "Acme Test", "owner", False)
    with pytest.raises(OrgNotFoundError):  # the calling key acts in its personal organization
        vb.orgs.get(slug)
    with pytest.raises(ConflictError) as taken:
        vb.orgs.create("Acme again", slug=slug)
    assert taken.value.code == "org_slug_taken"

    key = vb.keys.create("acme admin", org=org)
    assert isinstance(key, ApiKey) and key.org == slug and key.key
    assert vb.keys.get(key.id).org == slug
    assert all(k.org for k in vb.keys.list())  # every key acts in some organization
    acme = VibeBox(api_key=key.key, base_url=server.url)
    try:
        assert [o.slug for o in acme.orgs.list()] == [slug]
        # The org's owner holds keys.manage: every member's keys in it, each naming its user.
        assert [(k.id, k.org, bool(k.user)) for k in acme.keys.list(everyone=True)] == [(key.id, slug, True)]
        team = acme.orgs.members(slug)
        (owner,) = team.list()
        assert isinstance(owner, Member) and owner.role == "owner"

        added = team.add(member_name, role="developer")
        assert isinstance(added, Member) and (added.username, added.role) == (member_name, "developer")
        with pytest.raises(ConflictError) as again:
            team.add(member_name, role="viewer")
        assert again.value.code == "already_member"
        with pytest.raises(UserNotFoundError):
            team.add(unique("nobody"), role="viewer")
        with pytest.raises(UserNotFoundError):  # by email (no user has it)
            team.add(f"{unique('nobody')}@example.com", role="viewer")
        with pytest.raises(ValidationError) as role:
            team.add(member_name, role="wizard")
        assert role.value.code == "unknown_role"

        assert team.update(added.id, role="admin").role == "admin"
        assert {m.username: m.role for m in team.list()} == {owner.username: "owner", member_name: "admin"}
        with pytest.raises(LastOwnerError) as last:
            team.update(owner.id, role="admin")
        assert isinstance(last.value, ConflictError)
        assert (last.value.status, last.value.code, last.value.details["org"]) == (409, "last_owner", slug)
        with pytest.raises(LastOwnerError):
            team.remove(owner.id)

        team.remove(added.id)
        assert [m.username for m in team.list()] == [owner.username]
        with pytest.raises(MemberNotFoundError):
            team.remove(added.id)

        renamed = acme.orgs.update(slug, name="Acme Renamed")
        assert renamed.name == "Acme Renamed" and acme.orgs.get(slug).name == "Acme Renamed"
    finally:
        acme.orgs.delete(slug)
    with pytest.raises(AuthenticationError):  # the organization's keys went with it
        acme.orgs.list()
    acme.close()
    assert key.id not in {k.id for k in vb.keys.list()}


def test_async_client_has_the_same_orgs(server, member_name):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            (own,) = await vb.orgs.list()
            org = await vb.orgs.create(unique("Async Org"))  # slug made from the name
            assert org.slug.startswith("async-org-") and org.slug != own.slug
            key = await vb.keys.create("async admin", org=org.slug)
            assert key.org == org.slug
            async with AsyncVibeBox(api_key=key.key, base_url=server.url) as acme:
                team = acme.orgs.members(org)
                member = await team.add(member_name, role="viewer")
                assert member_name in {m.username for m in await team.list()}
                owner = next(m for m in await team.list() if m.role == "owner")
                with pytest.raises(LastOwnerError):
                    await team.update(owner.id, role="viewer")
                assert (await team.update(member.id, role="owner")).role == "owner"
                await team.remove(member.id)  # an owner, but not the last one
                assert [m.id for m in await team.list()] == [owner.id]
                await acme.orgs.delete(org)

    asyncio.run(scenario())
