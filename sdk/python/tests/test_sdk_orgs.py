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
    NodeLabelsConflictError,
    NoMatchingNodeError,
    Organization,
    OrgNotFoundError,
    PermissionDeniedError,
    Role,
    RoleBuiltInError,
    RoleInUseError,
    RoleNameTakenError,
    RoleNotFoundError,
    Team,
    TeamNameTakenError,
    TeamNotFoundError,
    UserNotFoundError,
    ValidationError,
    VibeBox,
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_an_organizations_node_labels_bind_its_creates(vb):
    """Node labels the organization requires (docs/nodes.md, "Placement"): set by org.manage, merged
    with a create's; the server's engine has none, so a create is refused with nothing made."""
    own = vb.orgs.list()[0]
    assert own.node_labels == {}
    try:
        assert vb.orgs.update(own, node_labels={"dedicated": "sdk"}).node_labels == {"dedicated": "sdk"}
        assert vb.orgs.get(own).node_labels == {"dedicated": "sdk"}
        with pytest.raises(NodeLabelsConflictError) as conflict:
            vb.create("python-3", node_labels={"dedicated": "other"})
        assert isinstance(conflict.value, NoMatchingNodeError) and conflict.value.status == 400
        assert conflict.value.details == {"key": "dedicated", "values": {"request": "other", "organization": "sdk"}}
        with pytest.raises(NoMatchingNodeError) as nowhere:
            vb.create("python-3")
        assert nowhere.value.details == {"nodeLabels": {"dedicated": "sdk"}}
    finally:
        vb.orgs.update(own, node_labels={})
    assert vb.orgs.get(own).node_labels == {}


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


BUILT_IN = ["owner", "admin", "developer", "viewer", "billing"]
DEVELOPER = ["sandboxes.create", "sandboxes.exec", "sandboxes.read", "templates.submit"]


def test_custom_roles_and_teams_decide_what_a_member_may_do(vb, server, outsider_key):
    """A custom role and a team's role, seen from the member's own key in the organization: their
    permissions are their role's united with their teams'."""
    slug, member = unique("roles"), unique("holder")
    member_key = server.create_key(member)
    org = vb.orgs.create("Roles Test", slug=slug)
    acme = VibeBox(api_key=vb.keys.create("roles admin", org=org).key, base_url=server.url)
    holder = None
    try:
        roles, teams = acme.orgs.roles(slug), acme.orgs.teams(slug)
        listed = roles.list()
        assert all(isinstance(r, Role) for r in listed)
        assert [(r.name, r.built_in) for r in listed] == [(name, True) for name in BUILT_IN]
        assert next(r for r in listed if r.name == "developer").permissions == DEVELOPER

        deployer = roles.create("deployer", permissions=["sandboxes.read", "sandboxes.create"], description="CI")
        assert isinstance(deployer, Role)
        assert (deployer.name, deployer.built_in, deployer.description) == ("deployer", False, "CI")
        assert deployer.permissions == ["sandboxes.create", "sandboxes.read"]  # sorted, as stored
        assert roles.get("deployer").raw == deployer.raw and roles.get(deployer).name == "deployer"
        assert [r.name for r in roles.list()] == [*BUILT_IN, "deployer"]
        with pytest.raises(RoleNameTakenError) as taken:
            roles.create("deployer", permissions=[])
        assert isinstance(taken.value, ConflictError) and taken.value.details == {"role": "deployer"}
        with pytest.raises(RoleNameTakenError):  # a built-in role's name
            roles.create("owner", permissions=["sandboxes.read"])
        with pytest.raises(ValidationError) as unknown:
            roles.create("wizard", permissions=["sandboxes.fly"])
        # The request's validation refuses it first (validation_error, the field named): the
        # server's unknown_permission (UnknownPermissionError) is not reached through the API.
        assert (unknown.value.status, unknown.value.code) == (400, "validation_error")
        assert unknown.value.details["fields"]["permissions.0"][0]["code"] == "invalid_choice"
        with pytest.raises(RoleNotFoundError):
            roles.get("no-such-role")
        assert roles.get("owner").built_in and "org.delete" in roles.get("owner").permissions
        with pytest.raises(RoleBuiltInError) as built_in:  # read by name, never changed or deleted
            roles.update("owner", description="mine")
        assert isinstance(built_in.value, ConflictError) and built_in.value.code == "role_built_in"
        with pytest.raises(RoleBuiltInError):
            roles.delete("viewer")

        holder = acme.orgs.members(slug).add(member, role="deployer")
        assert holder.role == "deployer"
        own = VibeBox(api_key=member_key, base_url=server.url)
        mine = VibeBox(api_key=own.keys.create("in roles org", org=slug).key, base_url=server.url)
        own.close()
        assert mine.orgs.get(slug).permissions == ["sandboxes.create", "sandboxes.read"]
        with pytest.raises(PermissionDeniedError) as denied:  # their role lacks members.manage
            mine.orgs.roles(slug).create("mine", permissions=["sandboxes.read"])
        assert denied.value.details["permission"] == "members.manage"
        assert [r.name for r in mine.orgs.roles(slug).list()][-1] == "deployer"  # reading: any member

        with pytest.raises(RoleInUseError) as in_use:
            roles.delete("deployer")
        assert isinstance(in_use.value, ConflictError) and in_use.value.details == {"role": "deployer"}
        changed = roles.update("deployer", permissions=["sandboxes.read"], description="read only")
        assert (changed.permissions, changed.description) == (["sandboxes.read"], "read only")
        assert mine.orgs.get(slug).permissions == ["sandboxes.read"]  # every holder, at once

        platform = teams.create("platform", role="developer")
        assert isinstance(platform, Team)
        assert (platform.name, platform.role, platform.members) == ("platform", "developer", [])
        assert platform.created_at and platform.raw["createdAt"] == platform.created_at
        assert teams.create("readers").role is None  # a team without a role
        with pytest.raises(TeamNameTakenError) as team_taken:
            teams.create("platform")
        assert isinstance(team_taken.value, ConflictError) and team_taken.value.details == {"team": "platform"}
        with pytest.raises(ValidationError) as no_role:
            teams.create("wizards", role="wizard")
        assert no_role.value.code == "unknown_role"

        joined = teams.add_member(platform, member)
        assert isinstance(joined, Team) and joined.members == [member]
        assert mine.orgs.get(slug).permissions == DEVELOPER  # deployer's sandboxes.read with developer's
        with pytest.raises(UserNotFoundError):
            teams.add_member("platform", unique("nobody"))
        with pytest.raises(MemberNotFoundError):  # a user, but not a member of the organization
            teams.add_member("platform", "outsider")
        with pytest.raises(TeamNotFoundError) as no_team:
            teams.add_member("no-such-team", member)
        assert no_team.value.status == 404 and no_team.value.details == {"team": "no-such-team"}

        infra = teams.update("platform", name="infra", role="")
        assert (infra.name, infra.role, infra.members) == ("infra", None, [member])
        with pytest.raises(TeamNotFoundError):
            teams.get("platform")
        assert mine.orgs.get(slug).permissions == ["sandboxes.read"]
        assert teams.update(infra, role="deployer").role == "deployer"
        assert [(t.name, t.role) for t in teams.list()] == [("infra", "deployer"), ("readers", None)]
        assert [t.name for t in mine.orgs.teams(slug).list()] == ["infra", "readers"]  # reading: any member
        with pytest.raises(PermissionDeniedError):
            mine.orgs.teams(slug).delete("readers")

        teams.remove_member("infra", member)
        assert teams.get("infra").members == []
        with pytest.raises(MemberNotFoundError):
            teams.remove_member("infra", member)
        with pytest.raises(RoleInUseError):  # the member still holds it, and so does the team
            roles.delete("deployer")
        teams.delete("infra")
        teams.delete("readers")
        assert teams.list() == []
        with pytest.raises(TeamNotFoundError):
            teams.delete("infra")
        acme.orgs.members(slug).update(holder.id, role="viewer")
        roles.delete("deployer")
        with pytest.raises(RoleNotFoundError):
            roles.get("deployer")
        assert [r.name for r in roles.list()] == BUILT_IN
        mine.close()
    finally:
        acme.orgs.delete(slug)
        acme.close()


def test_async_client_has_the_same_roles_and_teams(server, member_name):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            org = await vb.orgs.create(unique("Async Roles"))
            key = await vb.keys.create("async roles admin", org=org)
            async with AsyncVibeBox(api_key=key.key, base_url=server.url) as acme:
                roles, teams = acme.orgs.roles(org), acme.orgs.teams(org)
                try:
                    role = await roles.create("auditor", permissions=["audit.read"], description="reads logs")
                    assert (role.name, role.permissions, role.built_in) == ("auditor", ["audit.read"], False)
                    assert (await roles.get("auditor")).description == "reads logs"
                    assert [r.name for r in await roles.list()] == [*BUILT_IN, "auditor"]
                    with pytest.raises(RoleNameTakenError):
                        await roles.create("auditor", permissions=["audit.read"])
                    updated = await roles.update(role, description="")
                    assert (updated.description, updated.permissions) == ("", ["audit.read"])

                    await acme.orgs.members(org).add(member_name, role="viewer")
                    team = await teams.create("audit", role="auditor")
                    assert (await teams.add_member(team, member_name)).members == [member_name]
                    with pytest.raises(RoleInUseError):
                        await roles.delete("auditor")
                    assert (await teams.update("audit", role="viewer")).role == "viewer"
                    await roles.delete("auditor")  # no one holds it now
                    with pytest.raises(RoleNotFoundError):
                        await roles.get("auditor")
                    await teams.remove_member("audit", member_name)
                    assert (await teams.get("audit")).members == []
                    await teams.delete("audit")
                    with pytest.raises(TeamNotFoundError):
                        await teams.get("audit")
                finally:
                    await acme.orgs.delete(org)

    asyncio.run(scenario())
