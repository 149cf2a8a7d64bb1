"""`sandbox.env`, `sandbox.git`, `vb.keys` and `vb.orgs` (with its members, roles and teams): one
request per method.

They are shared by the sync and async clients: each method returns what `send` returns, the value
itself with `VibeBox`, an awaitable of it with `AsyncVibeBox` (`await sandbox.env.get("A")`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import calls
from .durations import Duration
from .models import EnvVar, Organization, Role, Team

OrgRef = str | Organization  # an organization's slug, or the organization itself
RoleRef = str | Role  # a role's name, or the role itself
TeamRef = str | Team  # a team's name, or the team itself


def slug_of(org: OrgRef) -> str:
    return org.slug if isinstance(org, Organization) else org


def name_of(ref: RoleRef | TeamRef) -> str:
    return ref.name if isinstance(ref, Role | Team) else ref


class _Namespace:
    def __init__(self, send: Callable[[calls.Call], Any], sandbox_id: Callable[[], str]) -> None:
        self._send = send
        self._sandbox_id = sandbox_id


class Env(_Namespace):
    """Environment variables, stored (encrypted) by the server and given to every later command.

    sandbox.env.set("NODE_ENV", "production")
    sandbox.env.set({"A": "1", "B": "2"})
    sandbox.env.set("TOKEN", "s3cr3t", secret=True)       # never shown again, masked in history
    sandbox.env.get("NODE_ENV")                           # EnvVar(name, value, secret)
    """

    def set(self, name: str | dict[str, Any], value: str | None = None, *, secret: bool = False) -> Any:
        """Sets one variable, or several from a dict (values: strings, or {"value", "secret"});
        `None` as a value removes that variable. Answers all variables (name -> EnvVar)."""
        if isinstance(name, dict):
            values = dict(name)
        else:
            values = {name: {"value": value, "secret": True} if secret and value is not None else value}
        return self._send(calls.env_patch(self._sandbox_id(), values))

    def get(self, name: str) -> Any:
        """The variable (`EnvVar`); `EnvVarNotFoundError` when it is not set. Secret values read `********`."""
        return self._send(calls.env_get(self._sandbox_id(), name))

    def all(self) -> Any:
        return self._send(calls.env_all(self._sandbox_id()))

    def replace(self, values: dict[str, Any]) -> Any:
        return self._send(calls.env_replace(self._sandbox_id(), values))

    def delete(self, name: str) -> Any:
        return self._send(calls.env_delete(self._sandbox_id(), name))


class Git(_Namespace):
    """Git in the sandbox (default path `/repo`). Answers are dicts with snake_case keys.

    sandbox.git.clone("https://example.com/app.git", branch="develop", depth=1)
    sandbox.git.commit("feat: x", all=True); sandbox.git.push()
    """

    def _post(self, operation: str, **fields: Any) -> Any:
        return self._send(calls.git_post(self._sandbox_id(), operation, fields))

    def _get(self, operation: str, **params: Any) -> Any:
        return self._send(calls.git_get(self._sandbox_id(), operation, params))

    def clone(
        self,
        url: str,
        *,
        branch: str | None = None,
        path: str | None = None,
        depth: int | None = None,
        auth: dict[str, Any] | None = None,
    ) -> Any:
        return self._post("clone", url=url, branch=branch, path=path, depth=depth, auth=auth)

    def pull(
        self,
        *,
        path: str | None = None,
        remote: str | None = None,
        branch: str | None = None,
        auth: dict[str, Any] | None = None,
    ) -> Any:
        return self._post("pull", path=path, remote=remote, branch=branch, auth=auth)

    def push(
        self,
        *,
        path: str | None = None,
        remote: str | None = None,
        branch: str | None = None,
        auth: dict[str, Any] | None = None,
        set_upstream: bool | None = None,
        force: bool | None = None,
    ) -> Any:
        return self._post(
            "push", path=path, remote=remote, branch=branch, auth=auth, set_upstream=set_upstream, force=force
        )

    def commit(
        self,
        message: str,
        *,
        all: bool = False,
        path: str | None = None,
        author: dict[str, str] | None = None,
        allow_empty: bool | None = None,
    ) -> Any:
        return self._post("commit", message=message, all=all, path=path, author=author, allow_empty=allow_empty)

    def checkout(self, branch: str, *, create: bool = False, path: str | None = None) -> Any:
        return self._post("checkout", branch=branch, create=create, path=path)

    def status(self, *, path: str | None = None) -> Any:
        return self._get("status", path=path)

    def diff(self, *, path: str | None = None, staged: bool | None = None, file: str | None = None) -> Any:
        return self._get("diff", path=path, staged="true" if staged else None, file=file)

    def log(self, *, path: str | None = None, limit: int | None = None) -> Any:
        return self._get("log", path=path, limit=limit)

    def branches(self, *, path: str | None = None) -> Any:
        return self._get("branches", path=path)


class Keys:
    """API keys of the caller (`keys:manage` scope). `create` answers the only copy of the key (`.key`)."""

    def __init__(self, send: Callable[[calls.Call], Any]) -> None:
        self._send = send

    def list(self, *, everyone: bool = False) -> Any:
        """Your keys; `everyone=True`: every member's keys in the organization (needs keys.manage)."""
        return self._send(calls.keys_list(everyone))

    def create(
        self,
        name: str,
        *,
        org: OrgRef | None = None,
        scopes: list[str] | None = None,
        expires_in: Duration | None = None,
        test: bool | None = None,
        rate_limit: str | None = None,
    ) -> Any:
        """A new key; `org` (a slug of yours) is the organization it acts in, default the calling key's."""
        fields = {
            "name": name,
            "org": slug_of(org) if org is not None else None,
            "scopes": scopes,
            "expires_in": expires_in,
            "test": test,
            "rate_limit": rate_limit,
        }
        return self._send(calls.key_create(fields))

    def get(self, key_id: str) -> Any:
        return self._send(calls.key_get(key_id))

    def revoke(self, key_id: str) -> Any:
        return self._send(calls.key_revoke(key_id))

    def rotate(self, key_id: str, *, grace_period: Duration | None = None) -> Any:
        return self._send(calls.key_rotate(key_id, grace_period))

    def usage(self, key_id: str) -> Any:
        return self._send(calls.key_usage(key_id))


class Orgs:
    """Your organizations (`Organization`: slug, name, personal, your role and permissions).

    Reading needs no scope; changes need the `orgs:manage` scope and, in the organization, the
    permission of your role. A key sees only the organization it acts in: to manage a new one,
    create a key in it (`vb.keys.create("acme admin", org="acme")`).

    vb.orgs.list()                                   # a key: [its own organization]
    vb.orgs.create("Acme", slug="acme")              # you are its owner
    vb.orgs.members("acme").add("bob", role="developer")
    vb.orgs.roles("acme").create("deployer", permissions=["sandboxes.read", "sandboxes.create"])
    vb.orgs.teams("acme").create("platform", role="deployer")
    """

    def __init__(self, send: Callable[[calls.Call], Any]) -> None:
        self._send = send

    def list(self) -> Any:
        return self._send(calls.orgs_list())

    def create(self, name: str, *, slug: str | None = None) -> Any:
        """A new organization (slug default: made from the name); `409 org_slug_taken` when taken."""
        return self._send(calls.org_create({"name": name, "slug": slug}))

    def get(self, org: OrgRef) -> Any:
        return self._send(calls.org_get(slug_of(org)))

    def update(self, org: OrgRef, *, name: str | None = None, slug: str | None = None) -> Any:
        """Renames it, or gives it a new `slug` (needs the org.manage permission)."""
        return self._send(calls.org_update(slug_of(org), {"name": name, "slug": slug}))

    def delete(self, org: OrgRef) -> Any:
        """Deletes it with its keys (org.delete); `OrgNotEmptyError` while it has sandboxes or snapshots."""
        return self._send(calls.org_delete(slug_of(org)))

    def members(self, org: OrgRef) -> Members:
        """The organization's members: `vb.orgs.members("acme").list()`."""
        return Members(self._send, slug_of(org))

    def roles(self, org: OrgRef) -> Roles:
        """The organization's roles, built-in and custom: `vb.orgs.roles("acme").list()`."""
        return Roles(self._send, slug_of(org))

    def teams(self, org: OrgRef) -> Teams:
        """The organization's teams: `vb.orgs.teams("acme").list()`."""
        return Teams(self._send, slug_of(org))


class Members:
    """The members of one organization (`Member`: id, username, email, role). Changes need the
    members.manage permission; anyone may remove themselves (leave). The last owner stays one
    (`LastOwnerError`)."""

    def __init__(self, send: Callable[[calls.Call], Any], slug: str) -> None:
        self._send = send
        self.slug = slug

    def list(self) -> Any:
        return self._send(calls.members_list(self.slug))

    def add(self, user: str, *, role: str) -> Any:
        """Adds an existing user by username, or by email when `user` holds an `@`; `role` is
        owner, admin, developer, viewer, billing or a custom role of the organization."""
        field = "email" if "@" in user else "username"
        return self._send(calls.member_add(self.slug, {field: user, "role": role}))

    def update(self, member_id: int | str, *, role: str) -> Any:
        """Changes a member's role (`member_id`: `Member.id`)."""
        return self._send(calls.member_update(self.slug, member_id, role))

    def remove(self, member_id: int | str) -> Any:
        """Removes a member: their keys in this organization stop working at once."""
        return self._send(calls.member_remove(self.slug, member_id))


class Roles:
    """The roles of one organization (`Role`: name, built_in, description, permissions): the
    built-in ones, then its custom ones. Reading: any member. Changes need the members.manage
    permission and every permission the role gives or gave (so an admin cannot make a role with
    org.delete); built-in roles cannot be changed.

    roles = vb.orgs.roles("acme")
    roles.create("deployer", permissions=["sandboxes.read", "sandboxes.create"], description="CI")
    roles.update("deployer", permissions=["sandboxes.read"])    # every holder, at once
    roles.delete("deployer")                                    # RoleInUseError while held
    """

    def __init__(self, send: Callable[[calls.Call], Any], slug: str) -> None:
        self._send = send
        self.slug = slug

    def list(self) -> Any:
        """Built-in roles (`built_in=True`) first, then the organization's own."""
        return self._send(calls.roles_list(self.slug))

    def create(self, name: str, *, permissions: list[str], description: str | None = None) -> Any:
        """A custom role: `name` 1-50 of a-z 0-9 _ - (`RoleNameTakenError` when taken or built in),
        `permissions` from the documented list (`UnknownPermissionError` for others)."""
        fields = {"name": name, "permissions": permissions, "description": description}
        return self._send(calls.role_create(self.slug, fields))

    def get(self, role: RoleRef) -> Any:
        """A custom role (`RoleNotFoundError` for any other name, built-in ones included)."""
        return self._send(calls.role_get(self.slug, name_of(role)))

    def update(self, role: RoleRef, *, permissions: list[str] | None = None, description: str | None = None) -> Any:
        """Changes what the role grants (every member and team holding it, at once), or its description."""
        fields = {"permissions": permissions, "description": description}
        return self._send(calls.role_update(self.slug, name_of(role), fields))

    def delete(self, role: RoleRef) -> Any:
        """Deletes a custom role; `RoleInUseError` while a member or team holds it."""
        return self._send(calls.role_delete(self.slug, name_of(role)))


class Teams:
    """The teams of one organization (`Team`: name, role, members). Members of a team inherit its
    role (None: a team that grants nothing). Reading: any member; changes need members.manage and
    every permission of the team's role.

    teams = vb.orgs.teams("acme")
    teams.create("platform", role="developer")
    teams.add_member("platform", "bob")                          # a member of acme: Team
    teams.update("platform", name="infra", role="")              # renamed, no role any more
    teams.remove_member("infra", "bob")
    teams.delete("infra")
    """

    def __init__(self, send: Callable[[calls.Call], Any], slug: str) -> None:
        self._send = send
        self.slug = slug

    def list(self) -> Any:
        return self._send(calls.teams_list(self.slug))

    def create(self, name: str, *, role: str | None = None) -> Any:
        """A team (`TeamNameTakenError` when taken); `role`: built-in or custom, none by default."""
        return self._send(calls.team_create(self.slug, {"name": name, "role": role}))

    def get(self, team: TeamRef) -> Any:
        return self._send(calls.team_get(self.slug, name_of(team)))

    def update(self, team: TeamRef, *, name: str | None = None, role: str | None = None) -> Any:
        """Renames the team, or gives it another role (`role=""` takes its role away)."""
        return self._send(calls.team_update(self.slug, name_of(team), {"name": name, "role": role}))

    def delete(self, team: TeamRef) -> Any:
        """Deletes the team: its members keep their own roles, not the team's."""
        return self._send(calls.team_delete(self.slug, name_of(team)))

    def add_member(self, team: TeamRef, username: str) -> Any:
        """Adds a member of the organization to the team (`MemberNotFoundError` for anyone else);
        answers the `Team`."""
        return self._send(calls.team_member_add(self.slug, name_of(team), username))

    def remove_member(self, team: TeamRef, username: str) -> Any:
        """Takes a member out of the team (`MemberNotFoundError` when they are not in it)."""
        return self._send(calls.team_member_remove(self.slug, name_of(team), username))


__all__ = ["Env", "EnvVar", "Git", "Keys", "Members", "Orgs", "Roles", "Teams"]
