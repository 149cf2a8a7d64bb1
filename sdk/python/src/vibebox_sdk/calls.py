"""Every API endpoint the SDK uses, described once as a `Call` for both the sync and async clients."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from .durations import Duration, seconds
from .errors import ValidationError
from .interpreter import CodeExecution
from .models import (
    ApiKey,
    AuditEntry,
    AuditPage,
    Delivery,
    EnvVar,
    ExecutionRecord,
    FileEntry,
    Grant,
    Invitation,
    LogEntry,
    MarketplaceTemplate,
    Member,
    Organization,
    Package,
    Review,
    Role,
    SandboxInfo,
    Snapshot,
    Submission,
    Team,
    Template,
    TemplateVersion,
    Webhook,
    snake_keys,
)
from .preview import Port, PreviewUrl
from .transport import Call

API = "/api/v1"
EXEC_DEFAULT_TIMEOUT = 60.0
EXEC_MAX_TIMEOUT = 3600.0
SLACK = 30.0  # on top of a command's own timeout, for the HTTP answer to arrive
LONG = 600.0
LIST_PACKAGES_TIMEOUT = 150.0  # the server gives a listing 120 s  # creates with a git clone, restarts, snapshots


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body in the API's camelCase, leaving out arguments that were not given (None)."""
    return {camel(k): v for k, v in fields.items() if v is not None}


def segment(value: str) -> str:
    """One URL path segment from an id or name. `.` and `..` are refused: quoting leaves them as they
    are and HTTP clients collapse them, so `env.get("..")` would reach the sandbox itself."""
    if value in ("", ".", ".."):
        raise ValidationError(f"{value!r} is not a valid id or name.", code="invalid_path")
    return quote(value, safe="")


def sandbox_path(sandbox_id: str, *parts: str) -> str:
    return "/".join([f"{API}/sandboxes/{segment(sandbox_id)}", *parts])


def sandbox_file(path: str) -> str:
    """The absolute, normalised sandbox path (relative paths start at /workspace): `..` cannot make
    the URL reach another endpoint once HTTP clients collapse it."""
    return "/" + posixpath.normpath(posixpath.join("/workspace", path)).lstrip("/")


def file_path(sandbox_id: str, path: str) -> str:
    """`…/files//<absolute path>` (`files//workspace/a.txt`, `files//app/x`)."""
    return sandbox_path(sandbox_id, "files", quote(sandbox_file(path), safe="/"))


def exec_timeout(timeout: Duration | None) -> float:
    """The HTTP read timeout for a command with this timeout."""
    try:
        value = EXEC_DEFAULT_TIMEOUT if timeout is None else seconds(timeout)
    except ValueError:  # the server explains what it accepts (400 invalid_duration)
        value = EXEC_DEFAULT_TIMEOUT
    return (value or EXEC_MAX_TIMEOUT) + SLACK


def _none(_: httpx.Response) -> None:
    return None


def _sandbox(response: httpx.Response) -> SandboxInfo:
    return SandboxInfo.from_api(response.json())


def _sandbox_page(response: httpx.Response) -> tuple[list[SandboxInfo], int, bool]:
    data = response.json()
    return [SandboxInfo.from_api(item) for item in data["results"]], data["count"], bool(data.get("next"))


def _env_map(response: httpx.Response) -> dict[str, EnvVar]:
    return {name: EnvVar(name, item["value"], item.get("secret", False)) for name, item in response.json().items()}


def _env_var(response: httpx.Response) -> EnvVar:
    data = response.json()
    return EnvVar(data["name"], data["value"], data.get("secret", False))


def _snake(response: httpx.Response) -> Any:
    return snake_keys(response.json()) if response.content else None


def _key(response: httpx.Response) -> ApiKey:
    return ApiKey.from_api(response.json())


def _snapshot(response: httpx.Response) -> Snapshot:
    return Snapshot.from_api(response.json())


def _snapshots(response: httpx.Response) -> list[Snapshot]:
    return [Snapshot.from_api(item) for item in response.json()["results"]]


def _many(model: Callable[[dict[str, Any]], Any]) -> Callable[[httpx.Response], list[Any]]:
    """A list answer's parser: a JSON array, or a page's `results`, each item made a model."""

    def parse(response: httpx.Response) -> list[Any]:
        data = response.json()
        return [model(item) for item in (data["results"] if isinstance(data, dict) else data)]

    return parse


# Sandboxes


def create_sandbox(fields: dict[str, Any]) -> Call:
    # With "wait", the server may wait up to VIBEBOX_TEMPLATE_WAIT (10 min) for the image first.
    timeout = 2 * LONG if fields.get("wait") else LONG
    return Call("POST", f"{API}/sandboxes", json=body(**fields), timeout=timeout, parse=_sandbox)


def get_sandbox(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id), parse=_sandbox)


def list_sandboxes(params: dict[str, Any]) -> Call:
    clean = {k: v for k, v in params.items() if v is not None}
    return Call("GET", f"{API}/sandboxes", params=clean, parse=_sandbox_page)


def update_sandbox(sandbox_id: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", sandbox_path(sandbox_id), json=fields, parse=_sandbox)


def destroy_sandbox(sandbox_id: str) -> Call:
    return Call("DELETE", sandbox_path(sandbox_id), parse=_none, timeout=LONG)


def sandbox_action(sandbox_id: str, action: str) -> Call:
    """start, stop, restart, pause, resume, recover."""
    return Call("POST", sandbox_path(sandbox_id, action), timeout=LONG, parse=_sandbox)


# Commands and code


def exec_command(sandbox_id: str, fields: dict[str, Any]) -> Call:
    return Call(
        "POST", sandbox_path(sandbox_id, "exec"), json=body(**fields), timeout=exec_timeout(fields.get("timeout"))
    )


def execute_code(sandbox_id: str, fields: dict[str, Any]) -> Call:
    timeout = exec_timeout(fields.get("timeout"))
    return Call("POST", sandbox_path(sandbox_id, "execute"), json=body(**fields), timeout=timeout)


def executions(sandbox_id: str, limit: int, offset: int) -> Call:
    def parse(response: httpx.Response) -> list[ExecutionRecord]:
        return [ExecutionRecord.from_api(item) for item in response.json()["results"]]

    return Call("GET", sandbox_path(sandbox_id, "executions"), params={"limit": limit, "offset": offset}, parse=parse)


def execution(sandbox_id: str, execution_id: str) -> Call:
    path = sandbox_path(sandbox_id, "executions", segment(execution_id))
    return Call("GET", path, parse=lambda response: ExecutionRecord.from_api(response.json()))


def processes(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "processes"), parse=lambda response: _snake(response)["processes"])


def kill_process(sandbox_id: str, process_id: str) -> Call:
    return Call("POST", sandbox_path(sandbox_id, "processes", segment(process_id), "kill"), parse=_snake)


def terminals(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "terminals"), parse=lambda response: _snake(response)["terminals"])


def kill_terminal(sandbox_id: str, session_id: str) -> Call:
    return Call("DELETE", sandbox_path(sandbox_id, "terminals", segment(session_id)), parse=_none)


def logs(sandbox_id: str, params: dict[str, Any]) -> Call:
    def parse(response: httpx.Response) -> list[LogEntry]:
        return [LogEntry.from_api(item) for item in response.json()["logs"]]

    clean = {k: v for k, v in params.items() if v is not None}
    return Call("GET", sandbox_path(sandbox_id, "logs"), params=clean, parse=parse)


def metrics(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "metrics"), feature="metrics", parse=_snake)


# Environment variables


def env_all(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "env"), parse=_env_map)


def env_patch(sandbox_id: str, values: dict[str, Any]) -> Call:
    return Call("PATCH", sandbox_path(sandbox_id, "env"), json=values, parse=_env_map)


def env_replace(sandbox_id: str, values: dict[str, Any]) -> Call:
    return Call("PUT", sandbox_path(sandbox_id, "env"), json=values, parse=_env_map)


def env_get(sandbox_id: str, name: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "env", segment(name)), parse=_env_var)


def env_delete(sandbox_id: str, name: str) -> Call:
    return Call("DELETE", sandbox_path(sandbox_id, "env", segment(name)), parse=_none)


# Packages


def install_packages(sandbox_id: str, fields: dict[str, Any]) -> Call:
    """Starts an install; the answer (202) has its `executionId`, followed like a background command."""
    return Call("POST", sandbox_path(sandbox_id, "packages"), json=body(**fields))


def list_packages(sandbox_id: str, manager: str, cwd: str | None) -> Call:
    def parse(response: httpx.Response) -> list[Package]:
        return [Package.from_api(item) for item in response.json()["packages"]]

    params = {"manager": manager, **({"cwd": cwd} if cwd else {})}
    return Call("GET", sandbox_path(sandbox_id, "packages"), params=params, timeout=LIST_PACKAGES_TIMEOUT, parse=parse)


# Files


def list_files(sandbox_id: str, path: str, recursive: bool) -> Call:
    params = {"path": path, "recursive": "true" if recursive else "false"}

    def parse(response: httpx.Response) -> list[FileEntry]:
        return [FileEntry.from_api(item) for item in response.json()["entries"]]

    return Call("GET", sandbox_path(sandbox_id, "files"), params=params, parse=parse)


def upload_file(sandbox_id: str, path: str, content: Callable[[], Any], size: int, mode: int | None) -> Call:
    params: dict[str, Any] = {"path": path}
    if mode is not None:
        params["mode"] = f"{mode:o}"
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    return Call(
        "POST",
        sandbox_path(sandbox_id, "files"),
        params=params,
        body=content,
        headers=headers,
        timeout=LONG,
        parse=_snake,
    )


def upload_archive(sandbox_id: str, path: str, content: Callable[[], Any], size: int) -> Call:
    headers = {"Content-Type": "application/x-tar", "Content-Length": str(size)}
    return Call(
        "POST",
        sandbox_path(sandbox_id, "files"),
        params={"path": path},
        body=content,
        headers=headers,
        timeout=LONG,
        parse=_snake,
    )


def download(sandbox_id: str, path: str, *, archive: bool = False) -> Call:
    params = {"format": "tar"} if archive else None
    return Call("GET", file_path(sandbox_id, path), params=params, stream=True, timeout=LONG)


def delete_file(sandbox_id: str, path: str, recursive: bool) -> Call:
    params = {"recursive": "true"} if recursive else None
    return Call("DELETE", file_path(sandbox_id, path), params=params, parse=_none)


def mkdir(sandbox_id: str, path: str) -> Call:
    return Call("POST", sandbox_path(sandbox_id, "files", "mkdir"), json={"path": path}, parse=_snake)


def move(sandbox_id: str, source: str, destination: str, overwrite: bool) -> Call:
    fields = {"source": source, "destination": destination, "overwrite": overwrite}
    return Call("POST", sandbox_path(sandbox_id, "files", "move"), json=fields, parse=_snake)


# Git


def git_post(sandbox_id: str, operation: str, fields: dict[str, Any]) -> Call:
    return Call("POST", sandbox_path(sandbox_id, "git", operation), json=body(**fields), timeout=LONG, parse=_snake)


def git_get(sandbox_id: str, operation: str, params: dict[str, Any]) -> Call:
    clean = {camel(k): v for k, v in params.items() if v is not None}
    return Call("GET", sandbox_path(sandbox_id, "git", operation), params=clean, timeout=LONG, parse=_snake)


def git_hooks_list(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "git", "hooks"), parse=_snake)


def git_hook_create(sandbox_id: str, fields: dict[str, Any]) -> Call:
    return Call("POST", sandbox_path(sandbox_id, "git", "hooks"), json=body(**fields), parse=_snake)


def git_hook_delete(sandbox_id: str, hook_id: str) -> Call:
    return Call("DELETE", sandbox_path(sandbox_id, "git", "hooks", segment(hook_id)), parse=_none)


# Snapshots and Claude Code: present in the SDK before the server has them (NotSupportedError until then).


def create_snapshot(sandbox_id: str, name: str | None) -> Call:
    path = sandbox_path(sandbox_id, "snapshots")
    return Call("POST", path, json=body(name=name), timeout=LONG, feature="snapshots", parse=_snapshot)


def list_snapshots(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "snapshots"), feature="snapshots", parse=_snapshots)


def all_snapshots() -> Call:
    return Call("GET", f"{API}/snapshots", feature="snapshots", parse=_snapshots)


def get_snapshot(snapshot_id: str) -> Call:
    return Call("GET", f"{API}/snapshots/{segment(snapshot_id)}", feature="snapshots", parse=_snapshot)


def delete_snapshot(snapshot_id: str) -> Call:
    return Call("DELETE", f"{API}/snapshots/{segment(snapshot_id)}", parse=_none, feature="snapshots")


def restore_snapshot(sandbox_id: str, snapshot_id: str) -> Call:
    fields = {"snapshot": snapshot_id}
    path = sandbox_path(sandbox_id, "restore")
    return Call("POST", path, json=fields, timeout=LONG, feature="snapshots", parse=_sandbox)


def claude(
    sandbox_id: str,
    method: str,
    operation: str,
    fields: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Call:
    """`…/claude/<operation>`; answers dicts with snake_case keys (lists for `data` pages)."""
    json = body(**fields) if fields is not None else None
    query = {camel(k): v for k, v in (params or {}).items() if v is not None}
    path = sandbox_path(sandbox_id, "claude", *operation.split("/"))

    def parse(response: httpx.Response) -> Any:
        value = _snake(response)
        return value["data"] if isinstance(value, dict) and set(value) == {"data"} else value

    return Call(method, path, json=json, params=query or None, timeout=LONG, feature="Claude Code", parse=parse)


# Sharing a sandbox: grants


SHARING = "sandbox sharing"


def _grant(response: httpx.Response) -> Grant:
    return Grant.from_api(response.json())


def grants_list(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "grants"), feature=SHARING, parse=_many(Grant.from_api))


def grant_set(sandbox_id: str, fields: dict[str, Any]) -> Call:
    return Call("POST", sandbox_path(sandbox_id, "grants"), json=body(**fields), feature=SHARING, parse=_grant)


def grant_delete(sandbox_id: str, grant_id: str) -> Call:
    return Call("DELETE", sandbox_path(sandbox_id, "grants", segment(grant_id)), feature=SHARING, parse=_none)


# Templates, keys, health


def templates() -> Call:
    return Call("GET", f"{API}/templates", parse=_many(Template.from_api))


def template(name: str) -> Call:
    return Call("GET", f"{API}/templates/{segment(name)}", parse=lambda r: Template.from_api(r.json()))


def keys_list(everyone: bool = False) -> Call:
    params = {"all": "true"} if everyone else None
    return Call("GET", f"{API}/keys", params=params, parse=_many(ApiKey.from_api))


def key_create(fields: dict[str, Any]) -> Call:
    return Call("POST", f"{API}/keys", json=body(**fields), parse=_key)


def key_get(key_id: str) -> Call:
    return Call("GET", f"{API}/keys/{segment(key_id)}", parse=_key)


def key_revoke(key_id: str) -> Call:
    return Call("DELETE", f"{API}/keys/{segment(key_id)}", parse=_none)


def key_rotate(key_id: str, grace_period: Duration | None) -> Call:
    path = f"{API}/keys/{segment(key_id)}/rotate"
    return Call("POST", path, json=body(grace_period=grace_period), parse=_key)


def key_usage(key_id: str) -> Call:
    return Call("GET", f"{API}/keys/{segment(key_id)}/usage", parse=_snake)


# Organizations, their members, roles and teams (a server from before them answers NotSupportedError).

ORGS = "organizations"


def org_path(slug: str, *parts: str) -> str:
    return "/".join([f"{API}/orgs/{segment(slug)}", *(segment(part) for part in parts)])


def _org(response: httpx.Response) -> Organization:
    return Organization.from_api(response.json())


def _member(response: httpx.Response) -> Member:
    return Member.from_api(response.json())


def orgs_list() -> Call:
    return Call("GET", f"{API}/orgs", feature=ORGS, parse=_many(Organization.from_api))


def org_create(fields: dict[str, Any]) -> Call:
    return Call("POST", f"{API}/orgs", json=body(**fields), feature=ORGS, parse=_org)


def org_get(slug: str) -> Call:
    return Call("GET", org_path(slug), feature=ORGS, parse=_org)


def org_update(slug: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", org_path(slug), json=body(**fields), feature=ORGS, parse=_org)


def org_delete(slug: str) -> Call:
    return Call("DELETE", org_path(slug), feature=ORGS, parse=_none)


def members_list(slug: str) -> Call:
    return Call("GET", org_path(slug, "members"), feature=ORGS, parse=_many(Member.from_api))


def member_add(slug: str, fields: dict[str, Any]) -> Call:
    return Call("POST", org_path(slug, "members"), json=body(**fields), feature=ORGS, parse=_member)


def member_update(slug: str, member_id: int | str, role: str) -> Call:
    path = org_path(slug, "members", str(member_id))
    return Call("PATCH", path, json={"role": role}, feature=ORGS, parse=_member)


def member_remove(slug: str, member_id: int | str) -> Call:
    return Call("DELETE", org_path(slug, "members", str(member_id)), feature=ORGS, parse=_none)


def _role(response: httpx.Response) -> Role:
    return Role.from_api(response.json())


def _team(response: httpx.Response) -> Team:
    return Team.from_api(response.json())


def roles_list(slug: str) -> Call:
    return Call("GET", org_path(slug, "roles"), feature=ORGS, parse=_many(Role.from_api))


def role_create(slug: str, fields: dict[str, Any]) -> Call:
    return Call("POST", org_path(slug, "roles"), json=body(**fields), feature=ORGS, parse=_role)


def role_get(slug: str, name: str) -> Call:
    return Call("GET", org_path(slug, "roles", name), feature=ORGS, parse=_role)


def role_update(slug: str, name: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", org_path(slug, "roles", name), json=body(**fields), feature=ORGS, parse=_role)


def role_delete(slug: str, name: str) -> Call:
    return Call("DELETE", org_path(slug, "roles", name), feature=ORGS, parse=_none)


def teams_list(slug: str) -> Call:
    return Call("GET", org_path(slug, "teams"), feature=ORGS, parse=_many(Team.from_api))


def team_create(slug: str, fields: dict[str, Any]) -> Call:
    return Call("POST", org_path(slug, "teams"), json=body(**fields), feature=ORGS, parse=_team)


def team_get(slug: str, name: str) -> Call:
    return Call("GET", org_path(slug, "teams", name), feature=ORGS, parse=_team)


def team_update(slug: str, name: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", org_path(slug, "teams", name), json=body(**fields), feature=ORGS, parse=_team)


def team_delete(slug: str, name: str) -> Call:
    return Call("DELETE", org_path(slug, "teams", name), feature=ORGS, parse=_none)


def team_member_add(slug: str, name: str, username: str) -> Call:
    path = org_path(slug, "teams", name, "members")
    return Call("POST", path, json={"username": username}, feature=ORGS, parse=_team)


def team_member_remove(slug: str, name: str, username: str) -> Call:
    return Call("DELETE", org_path(slug, "teams", name, "members", username), feature=ORGS, parse=_none)


# An organization's audit log and its invitations.

AUDIT = "the audit log"
INVITATIONS = "invitations"


def _cursor(link: str | None) -> str | None:
    """The `cursor` a `next`/`previous` link carries (the link itself names the server as it saw
    itself, which behind a proxy may not be the address the client uses)."""
    if not link:
        return None
    values = parse_qs(urlsplit(link).query).get("cursor")
    return values[0] if values else None


def _audit_page(response: httpx.Response) -> AuditPage:
    data = response.json()
    entries = [AuditEntry.from_api(item) for item in data["results"]]
    return AuditPage(entries, _cursor(data.get("next")), _cursor(data.get("previous")))


def audit_log(slug: str, params: dict[str, Any]) -> Call:
    clean = {k: v for k, v in params.items() if v is not None}
    return Call("GET", org_path(slug, "audit-log"), params=clean, feature=AUDIT, parse=_audit_page)


def audit_export(slug: str, params: dict[str, Any]) -> Call:
    clean = {k: v for k, v in params.items() if v is not None}
    path = org_path(slug, "audit-log", "export")
    return Call("GET", path, params=clean, stream=True, timeout=LONG, feature=AUDIT)


def _invitation(response: httpx.Response) -> Invitation:
    return Invitation.from_api(response.json())


def invitations_list(slug: str) -> Call:
    return Call("GET", org_path(slug, "invitations"), feature=INVITATIONS, parse=_many(Invitation.from_api))


def invitation_create(slug: str, email: str, role: str) -> Call:
    fields = {"email": email, "role": role}
    return Call("POST", org_path(slug, "invitations"), json=fields, feature=INVITATIONS, parse=_invitation)


def invitation_revoke(slug: str, invitation_id: str) -> Call:
    return Call("DELETE", org_path(slug, "invitations", invitation_id), feature=INVITATIONS, parse=_none)


def invitation_resend(slug: str, invitation_id: str) -> Call:
    path = org_path(slug, "invitations", invitation_id, "resend")
    return Call("POST", path, feature=INVITATIONS, parse=_invitation)


def invitation_accept(token: str) -> Call:
    path = f"{API}/invitations/accept"
    return Call("POST", path, json={"token": token}, feature=INVITATIONS, parse=_org)


# An organization's webhooks and their deliveries (docs/webhooks.md).

WEBHOOKS = "webhooks"


def webhook_path(webhook_id: str, *parts: str) -> str:
    return "/".join([f"{API}/webhooks/{segment(webhook_id)}", *(segment(part) for part in parts)])


def webhook_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A create or update body: camelCase, leaving out what was not given; a `filter`'s own keys
    may be given in snake_case too (`sandbox_id`)."""
    clean = {k: v for k, v in fields.items() if v is not None}
    if isinstance(clean.get("filter"), dict):
        clean["filter"] = {camel(k): v for k, v in clean["filter"].items()}
    return body(**clean)


def _page(model: Callable[[dict[str, Any]], Any]) -> Callable[[httpx.Response], tuple[list[Any], bool]]:
    """A limit/offset page's parser: its items made models, and whether more pages follow."""

    def parse(response: httpx.Response) -> tuple[list[Any], bool]:
        data = response.json()
        return [model(item) for item in data["results"]], bool(data.get("next"))

    return parse


def _webhook(response: httpx.Response) -> Webhook:
    return Webhook.from_api(response.json())


def _delivery(response: httpx.Response) -> Delivery:
    return Delivery.from_api(response.json())


def webhooks_list(limit: int, offset: int) -> Call:
    params = {"limit": limit, "offset": offset}
    return Call("GET", f"{API}/webhooks", params=params, feature=WEBHOOKS, parse=_page(Webhook.from_api))


def webhook_create(fields: dict[str, Any]) -> Call:
    return Call("POST", f"{API}/webhooks", json=webhook_fields(fields), feature=WEBHOOKS, parse=_webhook)


def webhook_get(webhook_id: str) -> Call:
    return Call("GET", webhook_path(webhook_id), feature=WEBHOOKS, parse=_webhook)


def webhook_update(webhook_id: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", webhook_path(webhook_id), json=webhook_fields(fields), feature=WEBHOOKS, parse=_webhook)


def webhook_delete(webhook_id: str) -> Call:
    return Call("DELETE", webhook_path(webhook_id), feature=WEBHOOKS, parse=_none)


def webhook_rotate_secret(webhook_id: str) -> Call:
    return Call("POST", webhook_path(webhook_id, "rotate-secret"), feature=WEBHOOKS, parse=_webhook)


def webhook_test(webhook_id: str) -> Call:
    return Call("POST", webhook_path(webhook_id, "test"), feature=WEBHOOKS, parse=_delivery)


def deliveries_list(webhook_id: str, params: dict[str, Any]) -> Call:
    clean = {k: v for k, v in params.items() if v is not None}
    path = webhook_path(webhook_id, "deliveries")
    return Call("GET", path, params=clean, feature=WEBHOOKS, parse=_page(Delivery.from_api))


def delivery_get(webhook_id: str, delivery_id: str) -> Call:
    return Call("GET", webhook_path(webhook_id, "deliveries", delivery_id), feature=WEBHOOKS, parse=_delivery)


def delivery_redeliver(webhook_id: str, delivery_id: str) -> Call:
    path = webhook_path(webhook_id, "deliveries", delivery_id, "redeliver")
    return Call("POST", path, feature=WEBHOOKS, parse=_delivery)


# The template marketplace (docs/marketplace.md).

MARKETPLACE = "the template marketplace"
SUBMISSIONS = f"{API}/marketplace/submissions"
CATALOGUE = f"{API}/marketplace/templates"
SUBMIT_TIMEOUT = 300.0  # an upload of up to 50 MiB on a slow link


def submission_path(submission_id: str, *parts: str) -> str:
    return "/".join([f"{SUBMISSIONS}/{segment(submission_id)}", *parts])


def catalogue_path(name: str, *parts: str) -> str:
    return "/".join([f"{CATALOGUE}/{segment(name)}", *(segment(part) for part in parts)])


def _submission(response: httpx.Response) -> Submission:
    return Submission.from_api(response.json())


def _market_template(response: httpx.Response) -> MarketplaceTemplate:
    return MarketplaceTemplate.from_api(response.json())


def submission_create(content: bytes, content_type: str) -> Call:
    """A multipart submission (`marketplace.multipart` makes the body): sent once, never retried
    after it may have reached the server (a POST)."""
    headers = {"Content-Type": content_type}
    return Call(
        "POST",
        SUBMISSIONS,
        body=lambda: content,
        headers=headers,
        timeout=SUBMIT_TIMEOUT,
        feature=MARKETPLACE,
        parse=_submission,
    )


def submissions_list(params: dict[str, Any]) -> Call:
    clean = {k: v for k, v in params.items() if v is not None}
    return Call("GET", SUBMISSIONS, params=clean, feature=MARKETPLACE, parse=_page(Submission.from_api))


def submission_get(submission_id: str, log_offset: int | None = None) -> Call:
    params = {"logOffset": log_offset} if log_offset is not None else None
    return Call("GET", submission_path(submission_id), params=params, feature=MARKETPLACE, parse=_submission)


def submission_review(submission_id: str, approve: bool, reason: str | None) -> Call:
    path = submission_path(submission_id, "review")
    return Call("POST", path, json=body(approve=approve, reason=reason), feature=MARKETPLACE, parse=_submission)


def submission_cancel(submission_id: str) -> Call:
    return Call("POST", submission_path(submission_id, "cancel"), feature=MARKETPLACE, parse=_submission)


def catalogue_list(params: dict[str, Any]) -> Call:
    clean = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    return Call("GET", CATALOGUE, params=clean, feature=MARKETPLACE, parse=_page(MarketplaceTemplate.from_api))


def catalogue_get(name: str) -> Call:
    return Call("GET", catalogue_path(name), feature=MARKETPLACE, parse=_market_template)


def reviews_list(name: str, limit: int, offset: int) -> Call:
    params = {"limit": limit, "offset": offset}
    path = catalogue_path(name, "reviews")
    return Call("GET", path, params=params, feature=MARKETPLACE, parse=_page(Review.from_api))


def review_upsert(name: str, rating: int, text: str | None) -> Call:
    path = catalogue_path(name, "reviews")
    fields = body(rating=rating, text=text)
    return Call("POST", path, json=fields, feature=MARKETPLACE, parse=lambda r: Review.from_api(r.json()))


def version_yank(name: str, version: str, reason: str | None) -> Call:
    path = catalogue_path(name, "versions", version, "yank")
    return Call(
        "POST", path, json=body(reason=reason), feature=MARKETPLACE, parse=lambda r: TemplateVersion.from_api(r.json())
    )


def template_deprecate(name: str, message: str, replacement: str | None) -> Call:
    path = catalogue_path(name, "deprecate")
    fields = body(message=message, replacement=replacement)
    return Call("POST", path, json=fields, feature=MARKETPLACE, parse=_market_template)


def template_feature(name: str, featured: bool, rank: int | None) -> Call:
    path = catalogue_path(name, "feature")
    return Call("POST", path, json=body(featured=featured, rank=rank), feature=MARKETPLACE, parse=_market_template)


def health() -> Call:
    def parse(response: httpx.Response) -> dict[str, Any]:
        return {**(response.json() if response.content else {}), "status_code": response.status_code}

    return Call("GET", "/readyz", parse=parse, raise_for_status=False)


# ---- the platform's status (docs/monitoring.md, "SLOs and the status page") ----


def platform_status() -> Call:
    return Call("GET", f"{API}/status", parse=_snake)


def slo_report() -> Call:
    return Call("GET", f"{API}/status/slo", parse=_snake)


# ---- billing (docs/billing.md, docs/api.md#billing) ----

BILLING = "billing"
# Answers' fields that are money or quantities (decimal strings): made Decimals.
DECIMALS = frozenset(
    {
        "amount",
        "total",
        "fee",
        "quantity",
        "unit_price",
        "included",
        "rate_per_hour",
        "month_to_date",
        "monthly_fee",
        "subtotal",
        "tax",
        "tax_rate",
    }
)


def decimals(value: Any) -> Any:
    """snake_case keys, and the decimal strings of money and quantities as `Decimal`s."""
    from decimal import Decimal

    if isinstance(value, list):
        return [decimals(item) for item in value]
    if isinstance(value, dict):
        return {k: Decimal(v) if k in DECIMALS and isinstance(v, str) else decimals(v) for k, v in value.items()}
    return value


def _billing(response: httpx.Response) -> Any:
    return decimals(snake_keys(response.json()))


def _window(start: str | None, end: str | None, group_by: str | None = None) -> dict[str, Any]:
    params = {"from": start, "to": end, "groupBy": group_by}
    return {k: v for k, v in params.items() if v is not None}


def billing_usage(start: str | None, end: str | None, group_by: str | None) -> Call:
    params = _window(start, end, group_by)
    return Call("GET", f"{API}/billing/usage", params=params, feature=BILLING, parse=_billing)


def billing_costs(start: str | None, end: str | None, group_by: str | None) -> Call:
    params = _window(start, end, group_by)
    return Call("GET", f"{API}/billing/costs", params=params, feature=BILLING, parse=_billing)


def billing_export(start: str | None, end: str | None, format: str) -> Call:
    params = {**_window(start, end), "format": format}
    return Call("GET", f"{API}/billing/usage/export", params=params, stream=True, timeout=LONG, feature=BILLING)


def billing_plans() -> Call:
    return Call("GET", f"{API}/billing/plans", feature=BILLING, parse=_billing)


def billing_plan() -> Call:
    return Call("GET", f"{API}/billing/plan", feature=BILLING, parse=_billing)


def billing_plan_change(plan: str, effective_from: str | None) -> Call:
    fields = body(plan=plan, effective_from=effective_from)
    return Call("PUT", f"{API}/billing/plan", json=fields, feature=BILLING, parse=_billing)


def sandbox_cost(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "cost"), feature=BILLING, parse=_billing)


def _billing_page(response: httpx.Response) -> tuple[list[Any], bool]:
    data = response.json()
    return decimals(snake_keys(data["results"])), bool(data.get("next"))


def invoices_list(status: str | None, limit: int, offset: int) -> Call:
    params = {k: v for k, v in {"status": status, "limit": limit, "offset": offset}.items() if v is not None}
    return Call("GET", f"{API}/billing/invoices", params=params, feature=BILLING, parse=_billing_page)


def invoice_get(invoice_id: str) -> Call:
    return Call("GET", f"{API}/billing/invoices/{segment(invoice_id)}", feature=BILLING, parse=_billing)


def invoice_pdf(invoice_id: str) -> Call:
    return Call("GET", f"{API}/billing/invoices/{segment(invoice_id)}.pdf", stream=True, timeout=LONG, feature=BILLING)


def billing_checkout(success_url: str | None, cancel_url: str | None) -> Call:
    fields = body(success_url=success_url, cancel_url=cancel_url)
    return Call("POST", f"{API}/billing/checkout", json=fields, feature=BILLING, parse=_billing)


# ---- preview URLs and code contexts (issue 25; docs/api.md "Preview URLs", "Code contexts") ----


def _port(response: httpx.Response) -> Any:
    return Port.from_api(response.json())


def ports_list(sandbox_id: str) -> Call:
    def parse(response: httpx.Response) -> list[Any]:
        return [Port.from_api(item) for item in response.json()["ports"]]

    return Call("GET", sandbox_path(sandbox_id, "ports"), feature="preview URLs", parse=parse)


def port_url(sandbox_id: str, port: int, expires_in: Duration | None, form: str | None) -> Call:
    params = {k: v for k, v in {"expiresIn": expires_in, "form": form}.items() if v is not None}
    path = sandbox_path(sandbox_id, "ports", segment(str(port)), "url")
    return Call(
        "GET", path, params=params, feature="preview URLs", parse=lambda response: PreviewUrl.from_api(response.json())
    )


def port_update(sandbox_id: str, port: int, public: bool) -> Call:
    path = sandbox_path(sandbox_id, "ports", segment(str(port)))
    return Call("PATCH", path, json={"public": public}, feature="preview URLs", parse=_port)


def context_create(sandbox_id: str, language: str, cwd: str | None) -> Call:
    fields = body(language=language, cwd=cwd)
    return Call("POST", sandbox_path(sandbox_id, "contexts"), json=fields, timeout=LONG, feature="code contexts")


def contexts_list(sandbox_id: str) -> Call:
    return Call(
        "GET",
        sandbox_path(sandbox_id, "contexts"),
        feature="code contexts",
        parse=lambda response: response.json()["contexts"],
    )


def context_get(sandbox_id: str, context_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "contexts", segment(context_id)))


def context_delete(sandbox_id: str, context_id: str) -> Call:
    return Call("DELETE", sandbox_path(sandbox_id, "contexts", segment(context_id)), parse=_none)


def context_action(sandbox_id: str, context_id: str, action: str) -> Call:
    """interrupt, restart: the context object back."""
    return Call("POST", sandbox_path(sandbox_id, "contexts", segment(context_id), action), timeout=LONG)


def context_execute(sandbox_id: str, context_id: str, code: str, timeout: Duration | None) -> Call:
    path = sandbox_path(sandbox_id, "contexts", segment(context_id), "execute")
    return Call(
        "POST",
        path,
        json=body(code=code, timeout=timeout),
        timeout=exec_timeout(timeout),
        parse=lambda response: CodeExecution.from_api(response.json()),
    )


# Egress policy (issue 25, egress): GET/PATCH /api/v1/sandboxes/{id}/network


def network_get(sandbox_id: str) -> Call:
    return Call("GET", sandbox_path(sandbox_id, "network"), parse=_snake)


def network_patch(sandbox_id: str, fields: dict[str, Any]) -> Call:
    return Call("PATCH", sandbox_path(sandbox_id, "network"), json=fields, parse=_snake)
