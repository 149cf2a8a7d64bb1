"""`sandbox.env`, `sandbox.git`, `vb.keys`, `vb.orgs` (with its members, roles, teams, invitations
and audit log), `vb.invitations` and `vb.webhooks`: one request per method, except the audit log's
iterators and the lists of webhooks and deliveries (every page).

They are shared by the sync and async clients: each method returns what `send` returns, the value
itself with `VibeBox`, an awaitable of it with `AsyncVibeBox` (`await sandbox.env.get("A")`).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

from . import calls
from .durations import Duration
from .models import AuditEntry, AuditPage, Delivery, EnvVar, Invitation, Organization, Role, Team, Webhook
from .paging import AsyncPaged, Paged

OrgRef = str | Organization  # an organization's slug, or the organization itself
RoleRef = str | Role  # a role's name, or the role itself
TeamRef = str | Team  # a team's name, or the team itself
InvitationRef = str | Invitation  # an invitation's id (`inv_…`), or the invitation itself
WebhookRef = str | Webhook  # a webhook's id (`whk_…`), or the webhook itself
DeliveryRef = str | Delivery  # a delivery's id (`dlv_…`), or the delivery itself
When = str | datetime.datetime  # ISO 8601 with a zone, or a datetime (a naive one is taken as UTC)
Destination = str | os.PathLike[str] | IO[bytes]  # a file's path, or a file open for binary writing
EXPORT_CHUNK = 64 * 1024


def slug_of(org: OrgRef) -> str:
    return org.slug if isinstance(org, Organization) else org


def name_of(ref: RoleRef | TeamRef) -> str:
    return ref.name if isinstance(ref, Role | Team) else ref


def invitation_id(ref: InvitationRef) -> str:
    return ref.id if isinstance(ref, Invitation) else ref


def _when(value: When | None) -> str | None:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.isoformat()
    return value


def audit_filters(
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: When | None = None,
    until: When | None = None,
) -> dict[str, Any]:
    """The audit log's query filters, leaving out those not given."""
    params = {"actor": actor, "action": action, "target": target, "since": _when(since), "until": _when(until)}
    return {k: v for k, v in params.items() if v is not None}


def token_of(token_or_link: str) -> str:
    """An invitation's token, from the token itself or the whole link (`…/invitations/<token>`)."""
    value = token_or_link.strip()
    if "/invitations/" in value:
        value = value.rstrip("/").rsplit("/", 1)[-1]
    return value


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

    def add_hook(self, *, branch: str | None = None, path: str | None = None, provider: str | None = None) -> Any:
        """An auto-pull webhook: a push to `branch` (default: the branch cloned) pulls into `path`,
        fast-forward only. Give the answer's `url` and `secret` (shown this once) to GitHub, GitLab
        or Gitea; `provider`: "github", "gitlab", "gitea" or "auto" (the default).

        hook = sandbox.git.add_hook(branch="main"); print(hook["url"], hook["secret"])
        """
        return self._send(calls.git_hook_create(self._sandbox_id(), {"branch": branch, "path": path,
                                                                      "provider": provider}))  # fmt: skip

    def hooks(self) -> Any:
        """The sandbox's auto-pull webhooks (no secrets), each with its last `deliveries`."""
        return self._send(calls.git_hooks_list(self._sandbox_id()))

    def remove_hook(self, hook_id: str) -> Any:
        """Deletes an auto-pull webhook; its URL answers 404 from then on."""
        return self._send(calls.git_hook_delete(self._sandbox_id(), hook_id))


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

    def update(
        self,
        org: OrgRef,
        *,
        name: str | None = None,
        slug: str | None = None,
        registry_mirrors: dict[str, str | None] | None = None,
        node_labels: dict[str, str] | None = None,
    ) -> Any:
        """Renames it, gives it a new `slug`, sets the package registry mirrors its sandboxes'
        installs use (`{"pip": "https://…/simple", "npm": "https://…"}`; a None URL removes one), or
        replaces the node labels every new sandbox's engine must have (`{"dedicated": "acme"}`; `{}`
        clears them). Needs the org.manage permission."""
        fields = {"name": name, "slug": slug, "registry_mirrors": registry_mirrors, "node_labels": node_labels}
        return self._send(calls.org_update(slug_of(org), fields))

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

    def invitations(self, org: OrgRef) -> OrgInvitations:
        """The organization's pending invitations: `vb.orgs.invitations("acme").list()`."""
        return OrgInvitations(self._send, slug_of(org))

    def audit_log(
        self,
        org: OrgRef,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: When | None = None,
        until: When | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> AuditLog:
        """The organization's audit log, newest first (the audit.read permission; a key needs the
        `audit:read` scope). Iterate it for every matching entry (`AuditEntry`), pages fetched as
        they are needed, at most `limit` entries; `.page()` gets one page with its cursors.

        Filters: `actor` (a username or key id), `action` (`sandbox.created`, or a family:
        `sandbox.`), `target` (an id, or `type:id`), `since` and `until` (ISO 8601 with a zone, or
        datetimes). `page_size`: entries per request, 1-500."""
        filters = audit_filters(actor, action, target, since, until)
        return AuditLog(self._send, slug_of(org), filters, limit=limit, page_size=page_size)

    def export_audit_log(
        self,
        org: OrgRef,
        to: Destination | None = None,
        *,
        format: str = "jsonl",
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: When | None = None,
        until: When | None = None,
    ) -> Any:
        """The whole filtered log, oldest first, streamed from the server as JSON lines or CSV
        (`format`), each entry with its hashes. With `to` (a path or a binary file): written there,
        answers the number of bytes; without: an iterator of its lines (no line ends)."""
        params = {"format": format, **audit_filters(actor, action, target, since, until)}
        call = calls.audit_export(slug_of(org), params)
        if to is None:
            return self._export_lines(call)
        return self._export_to(call, to)

    def _export_lines(self, call: calls.Call) -> Iterator[str]:
        response = self._send(call)
        try:
            yield from response.iter_lines()
        finally:
            response.close()

    def _export_to(self, call: calls.Call, to: Destination) -> int:
        response = self._send(call)
        written = 0
        try:
            with _open_destination(to) as handle:
                for chunk in response.iter_bytes(EXPORT_CHUNK):
                    handle.write(chunk)
                    written += len(chunk)
        finally:
            response.close()
        return written


@contextlib.contextmanager
def _open_destination(to: Destination) -> Iterator[IO[bytes]]:
    """A path opened (and closed) for writing, or a file object the caller keeps open."""
    if hasattr(to, "write"):
        yield to  # type: ignore[misc]
        return
    with open(to, "wb") as handle:  # type: ignore[arg-type]
        yield handle


class AsyncOrgs(Orgs):
    """`vb.orgs` of `AsyncVibeBox`: the same methods, awaited; the audit log is iterated with
    `async for`, and `export_audit_log` without `to` is an async iterator of lines."""

    def audit_log(self, org: OrgRef, **options: Any) -> AsyncAuditLog:  # type: ignore[override]
        log = super().audit_log(org, **options)
        return AsyncAuditLog(self._send, log.slug, log.filters, limit=log.limit, page_size=log.page_size)

    async def _export_lines(self, call: calls.Call) -> AsyncIterator[str]:  # type: ignore[override]
        response = await self._send(call)
        try:
            async for line in response.aiter_lines():
                yield line
        finally:
            await response.aclose()

    async def _export_to(self, call: calls.Call, to: Destination) -> int:  # type: ignore[override]
        response = await self._send(call)
        written = 0
        try:
            with _open_destination(to) as handle:
                async for chunk in response.aiter_bytes(EXPORT_CHUNK):
                    handle.write(chunk)
                    written += len(chunk)
        finally:
            await response.aclose()
        return written


class _AuditLogBase:
    def __init__(
        self,
        send: Callable[[calls.Call], Any],
        slug: str,
        filters: dict[str, Any],
        *,
        limit: int | None = None,
        page_size: int = 100,
    ) -> None:
        self._send = send
        self.slug = slug
        self.filters = filters
        self.limit = limit
        self.page_size = page_size

    def page(self, cursor: str | None = None, *, limit: int | None = None) -> Any:
        """One page (`AuditPage`: `entries`, newest first, `next_cursor` for older ones,
        `previous_cursor` for newer ones); `cursor` from an earlier page, `limit` entries (1-500,
        default the log's page size)."""
        size = limit or self._size()
        return self._send(calls.audit_log(self.slug, {**self.filters, "cursor": cursor, "limit": size}))

    def _size(self) -> int:
        return min(self.page_size, self.limit) if self.limit else self.page_size


class AuditLog(_AuditLogBase):
    """An organization's audit log, newest first: `for entry in vb.orgs.audit_log("acme"): ...`
    follows the pages' cursors as it goes; `list(vb.orgs.audit_log("acme", limit=20))`."""

    def __iter__(self) -> Iterator[AuditEntry]:
        cursor, seen = None, 0
        while True:
            page: AuditPage = self.page(cursor)
            for entry in page.entries:
                if self.limit is not None and seen >= self.limit:
                    return
                seen += 1
                yield entry
            if not page.next_cursor or not page.entries:
                return
            cursor = page.next_cursor


class AsyncAuditLog(_AuditLogBase):
    """The async twin of `AuditLog`: `async for entry in vb.orgs.audit_log("acme"): ...`;
    `await log.page()`."""

    async def __aiter__(self) -> AsyncIterator[AuditEntry]:
        cursor, seen = None, 0
        while True:
            page: AuditPage = await self.page(cursor)
            for entry in page.entries:
                if self.limit is not None and seen >= self.limit:
                    return
                seen += 1
                yield entry
            if not page.next_cursor or not page.entries:
                return
            cursor = page.next_cursor


class OrgInvitations:
    """The pending invitations of one organization (`Invitation`: id, email, role, invited_by,
    sent_at, expires_at, expired). Everything needs the members.manage permission and every
    permission of the invitation's role (a key: `orgs:manage` to write). The email carries a
    signed link; the invited user accepts it with `vb.invitations.accept(token)` or in a browser.

    invitations = vb.orgs.invitations("acme")
    invitation = invitations.create("ann@example.com", role="developer")
    invitations.resend(invitation)           # the same link, a fresh expiry
    invitations.revoke(invitation)           # the link stops working
    """

    def __init__(self, send: Callable[[calls.Call], Any], slug: str) -> None:
        self._send = send
        self.slug = slug

    def list(self) -> Any:
        """Pending invitations, expired ones too (`expired=True`) until revoked or sent again."""
        return self._send(calls.invitations_list(self.slug))

    def create(self, email: str, *, role: str) -> Any:
        """Invites an address with a role and emails it the link. An address with a pending
        invitation has that one sent again with this role and a fresh expiry; a member's address
        is `ConflictError` (`already_member`)."""
        return self._send(calls.invitation_create(self.slug, email, role))

    def resend(self, invitation: InvitationRef) -> Any:
        """Sends the email again, with a fresh expiry (`InvitationNotFoundError` once accepted or revoked)."""
        return self._send(calls.invitation_resend(self.slug, invitation_id(invitation)))

    def revoke(self, invitation: InvitationRef) -> Any:
        """Revokes it: its link stops working."""
        return self._send(calls.invitation_revoke(self.slug, invitation_id(invitation)))


class Invitations:
    """`vb.invitations.accept(token)`: joins the organization an invitation is for, with its role;
    answers that `Organization` (your role in it now). `token` is the link's last part, or the
    whole link. The caller's email must be the invited address (`InvitationEmailMismatchError`);
    a wrong or revoked link is `InvitationNotFoundError`, an expired one `InvitationExpiredError`,
    one used already `InvitationAcceptedError` (both `GoneError`, 410)."""

    def __init__(self, send: Callable[[calls.Call], Any]) -> None:
        self._send = send

    def accept(self, token: str) -> Any:
        return self._send(calls.invitation_accept(token_of(token)))


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
    org.delete); built-in roles are never changed or deleted (`RoleBuiltInError`).

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
        """A role, built-in or custom, by name (`RoleNotFoundError` when there is none)."""
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


def webhook_id(ref: WebhookRef) -> str:
    return ref.id if isinstance(ref, Webhook) else ref


def delivery_id(ref: DeliveryRef) -> str:
    return ref.id if isinstance(ref, Delivery) else ref


class Webhooks(Paged):
    """The webhooks of the organization the key acts in (docs/webhooks.md): endpoints VibeBox
    POSTs signed events to. Everything needs the webhooks.manage permission (owners and admins)
    and, for a key, the `webhooks:manage` scope; another organization's webhook is
    `WebhookNotFoundError`.

    hook = vb.webhooks.create("https://example.com/hooks", ["sandbox.created", "execution.failed"])
    hook.secret                               # whsec_…: shown only here, store it now
    vb.webhooks.test(hook)                    # a webhook.test event, sent at once
    for delivery in vb.webhooks.deliveries(hook, limit=10):
        print(delivery.event, delivery.status, delivery.response_status)
    vb.webhooks.redeliver(hook, delivery)     # the same event (same webhook-id), again
    """

    def __init__(self, send: Callable[[calls.Call], Any]) -> None:
        self._send = send

    def create(
        self,
        url: str,
        events: list[str],
        *,
        description: str | None = None,
        active: bool = True,
        filter: dict[str, Any] | None = None,
    ) -> Any:
        """A new endpoint (`Webhook`, with its `secret`: the only time it is shown). `events`: names
        from docs/webhooks.md or `["*"]` (`UnknownEventError` for others); `filter`: `{"sandbox_id"
        or "sandboxId", "template", "metadata": {k: v}}` narrows it to some sandboxes."""
        fields = {"url": url, "events": events, "description": description, "active": active, "filter": filter}
        return self._send(calls.webhook_create(fields))

    def list(self, *, limit: int | None = None) -> Any:
        """The organization's webhooks, newest first (every page, or the first `limit`)."""
        return self._collect(lambda size, offset: calls.webhooks_list(size, offset), limit)

    def get(self, webhook: WebhookRef) -> Any:
        return self._send(calls.webhook_get(webhook_id(webhook)))

    def update(
        self,
        webhook: WebhookRef,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        active: bool | None = None,
        filter: dict[str, Any] | None = None,
    ) -> Any:
        """Changes what is given: `active=True` turns on one the server disabled (and sends what waited);
        `filter={}` removes the filter."""
        fields = {"url": url, "events": events, "description": description, "active": active, "filter": filter}
        return self._send(calls.webhook_update(webhook_id(webhook), fields))

    def delete(self, webhook: WebhookRef) -> Any:
        """Deletes the endpoint with its delivery history; nothing more is sent to it."""
        return self._send(calls.webhook_delete(webhook_id(webhook)))

    def rotate_secret(self, webhook: WebhookRef) -> Any:
        """A new secret (`Webhook.secret`, shown only here); the previous one keeps signing beside it
        for 24 hours (`previous_secret_expires_at`)."""
        return self._send(calls.webhook_rotate_secret(webhook_id(webhook)))

    def test(self, webhook: WebhookRef) -> Any:
        """Queues a `webhook.test` event to this endpoint alone, sent at once (even while inactive);
        answers its `Delivery` (`pending` until the sender has tried)."""
        return self._send(calls.webhook_test(webhook_id(webhook)))

    def deliveries(
        self,
        webhook: WebhookRef,
        *,
        status: str | None = None,
        event: str | None = None,
        limit: int | None = None,
    ) -> Any:
        """The endpoint's deliveries, newest first (every page, or the first `limit`); `status`
        (pending, succeeded, retrying, failed) and `event` filter them."""
        hook = webhook_id(webhook)
        filters = {"status": status, "event": event}
        return self._collect(
            lambda size, offset: calls.deliveries_list(hook, {**filters, "limit": size, "offset": offset}), limit
        )

    def delivery(self, webhook: WebhookRef, delivery: DeliveryRef) -> Any:
        """One delivery with its `payload` (the request body) and `attempt_log` (each attempt)."""
        return self._send(calls.delivery_get(webhook_id(webhook), delivery_id(delivery)))

    def redeliver(self, webhook: WebhookRef, delivery: DeliveryRef) -> Any:
        """Sends the delivery's event again, at once, as a new `Delivery` (same `event_id`, the
        `webhook-id` header, and the same body)."""
        return self._send(calls.delivery_redeliver(webhook_id(webhook), delivery_id(delivery)))


class AsyncWebhooks(AsyncPaged, Webhooks):
    """`vb.webhooks` of `AsyncVibeBox`: the same methods, awaited."""


__all__ = [
    "AsyncAuditLog",
    "AsyncOrgs",
    "AsyncWebhooks",
    "AuditLog",
    "Env",
    "EnvVar",
    "Git",
    "Invitations",
    "Keys",
    "Members",
    "OrgInvitations",
    "Orgs",
    "Roles",
    "Teams",
    "Webhooks",
]


class Billing(Paged):
    """Usage, costs, plans and invoices of the organization the key acts in (docs/billing.md). Reading needs the
    billing.read permission (owners, admins, the billing role) and, for a key, the `billing:read`
    scope; changing the plan billing.manage and `billing:manage`. Money and quantities are
    `Decimal`s, in the plan's `currency`.

    vb.billing.costs(group_by="sandbox")           # this month so far, per sandbox
    vb.billing.usage(start="2026-11-01", end="2026-12-01", group_by="day")
    vb.billing.export("usage.csv", format="csv")  # the hourly records, streamed to a file
    vb.billing.plan()                              # the plan, its limits, the month to date
    vb.billing.change_plan("pro")
    for invoice in vb.billing.invoices(status="open"):  # newest period first
        vb.billing.invoice_pdf(invoice["id"], file=f"{invoice['number']}.pdf")
    """

    def __init__(self, send: Callable[[calls.Call], Any]) -> None:
        self._send = send

    def usage(self, *, start: When | None = None, end: When | None = None, group_by: str | None = None) -> Any:
        """What was used in [start, end) (default: this month so far), in price units, per group
        (`group_by`: sandbox, template, day or resource, the default): {"items": [{"key", "label",
        "resource", "quantity", "unit"}], ...}."""
        return self._send(calls.billing_usage(_when(start), _when(end), group_by))

    def costs(self, *, start: When | None = None, end: When | None = None, group_by: str | None = None) -> Any:
        """What [start, end) costs: {"currency", "fee", "total", "groups": [{"key", "label",
        "amount"}], "items": per group and resource, "line_items": the plan's lines}."""
        return self._send(calls.billing_costs(_when(start), _when(end), group_by))

    def export(
        self,
        to: Destination | None = None,
        *,
        format: str = "csv",
        start: When | None = None,
        end: When | None = None,
    ) -> Any:
        """The hourly usage records of [start, end), oldest first, streamed as CSV or JSON lines
        (`format`). With `to` (a path or a binary file): written there, answers the number of
        bytes; without: an iterator of its lines (no line ends)."""
        call = calls.billing_export(_when(start), _when(end), format)
        if to is None:
            return self._export_lines(call)
        return self._export_to(call, to)

    def plans(self) -> Any:
        """The plans on offer: slug, name, currency, monthly_fee, prices, limits."""
        return self._send(calls.billing_plans())

    def plan(self) -> Any:
        """The organization's plan now, changes scheduled, its limits, the month to date."""
        return self._send(calls.billing_plan())

    def change_plan(self, plan: str, *, effective_from: When | None = None) -> Any:
        """Puts the organization on `plan` from now (or `effective_from`, later); audited."""
        return self._send(calls.billing_plan_change(plan, _when(effective_from)))

    def sandbox_cost(self, sandbox: str) -> Any:
        """A sandbox's cost so far and its rate per hour now (`sandbox.cost()` too)."""
        return self._send(calls.sandbox_cost(sandbox))

    def invoices(self, *, status: str | None = None, limit: int | None = None) -> Any:
        """The organization's invoices, newest period first (every page, or the first `limit`);
        `status` (open, paid, failed, void) filters them. Each: id, number, period_start,
        period_end, currency, subtotal, tax_rate, tax, total, status, issued_at, paid_at, pdf_url."""
        return self._collect(lambda size, offset: calls.invoices_list(status, size, offset), limit)

    def invoice(self, invoice: str) -> Any:
        """One invoice (inv_…) with its `lines` (position, description, resource, plan, quantity,
        unit, unit_price, amount); another organization's is `InvoiceNotFoundError`."""
        return self._send(calls.invoice_get(invoice))

    def invoice_pdf(self, invoice: str, file: Destination | None = None) -> Any:
        """The invoice as a PDF. With `file` (a path or a binary file): streamed there, answers the
        number of bytes; without: the PDF's bytes."""
        call = calls.invoice_pdf(invoice)
        if file is None:
            return self._read_all(call)
        return self._export_to(call, file)

    def checkout(self, *, success_url: str | None = None, cancel_url: str | None = None) -> Any:
        """A Stripe Checkout session (setup mode: nothing is charged) for the payment method invoices
        are charged to: {"id", "url"}; send the browser to `url`. Needs billing.manage (a key:
        `billing:manage`); `PaymentsNotConfiguredError` when the server takes no payments."""
        return self._send(calls.billing_checkout(success_url, cancel_url))

    def _read_all(self, call: calls.Call) -> bytes:
        buffer = io.BytesIO()
        self._export_to(call, buffer)
        return buffer.getvalue()

    _export_lines = Orgs._export_lines
    _export_to = Orgs._export_to


class AsyncBilling(AsyncPaged, Billing):
    """`vb.billing` of `AsyncVibeBox`: the same methods, awaited; `export` without `to` is an async
    iterator of lines."""

    _export_lines = AsyncOrgs._export_lines  # type: ignore[assignment]
    _export_to = AsyncOrgs._export_to  # type: ignore[assignment]

    async def _read_all(self, call: calls.Call) -> bytes:  # type: ignore[override]
        buffer = io.BytesIO()
        await self._export_to(call, buffer)
        return buffer.getvalue()
