"""Typed views of the API's JSON (camelCase on the wire, snake_case here).

Every model keeps the server's whole answer in `raw`, so fields a newer server adds are not lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Self

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def snake_keys(value: Any) -> Any:
    """A JSON value with every object key turned to snake_case (used for git and usage answers)."""
    if isinstance(value, dict):
        return {snake(str(k)): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f for f in cls.__dataclass_fields__ if f != "raw"}
    return {snake(k): v for k, v in data.items() if snake(k) in names}


class _Model:
    """`from_api` for the dataclasses below: the fields they know, the whole answer in `raw`."""

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        return cls(**_pick(cls, data), raw=data)  # type: ignore[call-arg]


@dataclass
class SandboxInfo(_Model):
    """A sandbox as the server last described it."""

    id: str
    name: str
    template: str
    status: str
    status_reason: str = ""
    ephemeral: bool = False
    timeout: int | None = None
    expires_at: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    destroyed_at: str | None = None
    paused_at: str | None = None
    auto_pause: int | None = None
    auto_resume: bool = False
    pause_stops_timeout: bool = False
    last_activity_at: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    warm: bool = False
    network: dict[str, Any] = field(default_factory=dict)  # the egress policy: internet, allow, deny, proxied
    # The node labels its engine has to have: the create's node_labels, its template's, its
    # organization's and its snapshot's, merged ({} for none).
    node_labels: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class ExecutionResult:
    """What a command or code snippet did.

    `duration` is in milliseconds; `output` is stdout followed by stderr; `return_value` is the
    snippet's value (`run()` of code), else None. `phase` (code only) is `"compile"` when a compiled
    language's build (Go, Rust, Java, TypeScript's type stripping) failed or timed out, its
    messages on `stderr`, else `"run"`; None for commands.
    """

    execution_id: str | None
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    duration: int = 0
    status: str = ""
    truncated: bool = False
    oom_killed: bool = False
    language: str | None = None
    return_value: Any = None
    phase: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    sandbox: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any], sandbox: Any = None) -> ExecutionResult:
        values = _pick(cls, data)
        values.setdefault("execution_id", None)
        return cls(**values, raw=data, sandbox=sandbox)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.status == "completed"

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    # The fluent chain: sandbox.upload("./src").run("npm install").run("npm test").download(...).destroy()
    def run(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return self.sandbox.run(*args, **kwargs)

    def exec(self, *args: Any, **kwargs: Any) -> Any:
        return self.sandbox.exec(*args, **kwargs)

    def upload(self, *args: Any, **kwargs: Any) -> Any:
        return self.sandbox.upload(*args, **kwargs)

    def download(self, *args: Any, **kwargs: Any) -> Any:
        return self.sandbox.download(*args, **kwargs)

    def destroy(self) -> None:
        self.sandbox.destroy()


@dataclass
class ExecutionRecord(_Model):
    """An entry of a sandbox's execution history."""

    execution_id: str
    kind: str = ""
    language: str | None = None
    command: str = ""
    cwd: str = ""
    user: str = ""
    status: str = ""
    exit_code: int | None = None
    duration: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    return_value: Any = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class FileEntry(_Model):
    path: str
    name: str
    size: int = 0
    is_dir: bool = False
    type: str = "file"
    mode: str = ""
    modified_at: float | None = None
    symlink_target: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class EnvVar:
    name: str
    value: str
    secret: bool = False


@dataclass
class LogEntry(_Model):
    """A line of container output (`type == "log"`) or a VibeBox event (`type == "event"`)."""

    type: str
    stream: str
    text: str
    timestamp: str | float | None = None
    event: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Template(_Model):
    """A template. `build_state` is `ready`, `queued`, `building` (`build_progress` then has `step`
    and `steps`, or is None) or `failed` (`build_message` says why); `image_size` is in bytes (None
    until built); `smoke` is a shell command that exits 0 when the image works."""

    name: str
    aliases: list[str] = field(default_factory=list)
    display_name: str = ""
    description: str = ""
    version: int | str = ""
    image: str = ""
    language: str = ""
    languages: list[str] = field(default_factory=list)
    package_managers: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = ""
    default_env: dict[str, str] = field(default_factory=dict)
    ports: list[Any] = field(default_factory=list)
    pre_installed: Any = None
    smoke: str = ""
    built_in: bool = False
    image_size: int | None = None
    build_state: str = ""
    build_progress: dict[str, int] | None = None
    build_message: str = ""
    build_seconds: float | None = None
    node_labels: dict[str, str] = field(default_factory=dict)  # its sandboxes' engine must have them
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ready(self) -> bool:
        """The image is built: sandboxes of this template start now (an older server says nothing: ready)."""
        return self.build_state in ("", "ready")


@dataclass
class ApiKey(_Model):
    """An API key's description; `key` (the secret) is set only in the answer that created it."""

    id: str
    name: str
    org: str | None = None  # the slug of the organization the key acts in
    user: str | None = None  # whose key it is (username)
    prefix: str = ""
    scopes: list[str] = field(default_factory=list)
    created_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    rate_limit: str | None = None
    test: bool = False
    active: bool = True
    key: str | None = field(default=None, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Snapshot(_Model):
    """A sandbox's filesystem and workspace at one moment (not its memory)."""

    id: str
    name: str = ""
    sandbox_id: str | None = None
    sandbox_name: str = ""
    template: str = ""
    size: int | None = None
    image_bytes: int | None = None
    workspace_bytes: int | None = None
    node_labels: dict[str, str] = field(default_factory=dict)  # its sandbox's: creates and restores from it honour them
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Organization(_Model):
    """An organization you belong to, with your `role` and `permissions` in it. `personal` is your
    own one (one member, never deleted)."""

    id: str
    slug: str
    name: str = ""
    personal: bool = False
    role: str = ""
    permissions: list[str] = field(default_factory=list)
    registry_mirrors: dict[str, str] = field(default_factory=dict)
    node_labels: dict[str, str] = field(default_factory=dict)  # every new sandbox's engine must have them
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Package(_Model):
    """An installed package, as its manager lists it (`sandbox.packages.list(manager="pip")`)."""

    name: str
    version: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Member(_Model):
    """A member of an organization; `id` names them in `members(org).update()` and `.remove()`."""

    id: int
    username: str
    email: str = ""
    role: str = ""
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Role(_Model):
    """A role of an organization: a built-in one (`built_in`: owner, admin, developer, viewer,
    billing) or a custom one, a name and a subset of the permissions (docs/api.md, "Organizations")."""

    name: str
    built_in: bool = False
    description: str = ""
    permissions: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Team(_Model):
    """A team of an organization: its members (usernames) inherit its `role` (None: it grants none)."""

    name: str
    role: str | None = None
    members: list[str] = field(default_factory=list)
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Grant(_Model):
    """A sandbox shared with one member (`user`, a username) or a team (`team`, its name) of its
    organization at `access`: read, use (also commands, files, git, terminals) or manage (also
    lifecycle, environment, snapshots and grants). `id` (`grt_…`) names it in `unshare()`."""

    id: str
    access: str
    user: str | None = None
    team: str | None = None
    created_by: str | None = None
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class AuditEntry(_Model):
    """One entry of an organization's audit log (docs/audit.md): who (`actor`, `key_id`), through
    which door (`source`), what (`action`, `target_type`, `target_id`, `changes`), and the chain."""

    seq: int
    action: str
    created_at: str | None = None
    actor: str = ""
    actor_user_id: int | None = None
    key_id: str = ""
    source: str = ""
    ip: str = ""
    user_agent: str = ""
    target_type: str = ""
    target_id: str = ""
    changes: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class AuditPage:
    """One page of the audit log, newest first; `next_cursor` (older entries) and
    `previous_cursor` (newer ones) are None at the ends."""

    entries: list[AuditEntry]
    next_cursor: str | None = None
    previous_cursor: str | None = None


@dataclass
class Invitation(_Model):
    """A pending invitation to an organization (`inv_…`): sent to `email`, for `role`, until
    `expires_at` (`expired`: past it; sending it again renews it)."""

    id: str
    email: str
    role: str = ""
    invited_by: str | None = None
    created_at: str | None = None
    sent_at: str | None = None
    expires_at: str | None = None
    expired: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Webhook(_Model):
    """An endpoint of the organization that VibeBox delivers events to (docs/webhooks.md): `id`
    (`whk_…`), `url`, `events` (names, or `["*"]`), `description`, `active`, `filter`
    (`{"sandboxId"?, "template"?, "metadata"?}`; `{}`: every event), `disabled_reason` (set when
    the server turned it off). `secret` (`whsec_…`) is set only in the answers of `create` and
    `rotate_secret`: the only time it is shown."""

    id: str
    url: str
    events: list[str] = field(default_factory=list)
    description: str = ""
    active: bool = True
    filter: dict[str, Any] = field(default_factory=dict)
    disabled_reason: str = ""
    previous_secret_expires_at: str | None = None
    created_by: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    secret: str | None = field(default=None, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class DeliveryAttempt(_Model):
    """One attempt of a delivery: when (`at`), the answer's `status_code` or why none came
    (`error`: `timeout: …`, `refused: …`), the headers both ways, the answer's first 4 KiB."""

    at: str | None = None
    status_code: int | None = None
    error: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    duration_ms: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Delivery(_Model):
    """One event sent (or to be sent) to a webhook (`dlv_…`): `event_id` is the `webhook-id`
    header, the same on every attempt and redelivery; `status` is pending, succeeded, retrying or
    failed. `payload` (the request body) and `attempt_log` are set by `webhooks.delivery()` only."""

    id: str
    webhook_id: str = ""
    event_id: str = ""
    event: str = ""
    status: str = ""
    attempts: int = 0
    response_status: int | None = None
    duration_ms: int | None = None
    next_attempt_at: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    redelivery_of: str | None = None
    payload: dict[str, Any] | None = None
    attempt_log: list[DeliveryAttempt] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        values = _pick(cls, data)
        values["attempt_log"] = [DeliveryAttempt.from_api(item) for item in data.get("attemptLog") or []]
        return cls(**values, raw=data)


# The template marketplace (docs/marketplace.md).

SUBMISSION_ENDED = frozenset({"published", "rejected", "failed", "cancelled"})
SUBMISSION_FAILED = frozenset({"rejected", "failed", "cancelled"})


@dataclass
class Submission(_Model):
    """A template version submitted to the marketplace (`sub_…`): `state` is queued, building,
    smoke_testing, awaiting_review (a public one, for staff), published, rejected, failed or
    cancelled; when failed, `failed_step` (upload, build, policy, smoke) and `message` say why.
    `template_version` is `name@version` once a version row exists.

    `build_log`, `log_offset`, `smoke_output` and `spec` are set by `marketplace.submission()`
    (not in lists): `build_log` starts at byte `log_offset` of the whole log, `log_size` bytes long."""

    id: str
    template: str = ""
    version: str = ""
    visibility: str = "private"
    state: str = ""
    failed_step: str = ""
    message: str = ""
    org: str = ""
    user: str | None = None
    context_bytes: int = 0
    image: str = ""
    image_size: int | None = None
    build_seconds: float | None = None
    log_size: int = 0
    reviewer: str | None = None
    review_reason: str = ""
    template_version: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None
    build_log: str = ""
    log_offset: int = 0
    smoke_output: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ended(self) -> bool:
        """Published, rejected, failed or cancelled: nothing more will happen to it."""
        return self.state in SUBMISSION_ENDED

    @property
    def succeeded(self) -> bool:
        """Published, or (a public one) through the pipeline and awaiting review."""
        return self.state in ("published", "awaiting_review")


@dataclass
class TemplateVersion(_Model):
    """One published version of a marketplace template: `yanked` ones are kept for the sandboxes
    that use them but new creates refuse them."""

    version: str
    changelog: str = ""
    image_size: int | None = None
    published_at: str | None = None
    yanked: bool = False
    yanked_at: str | None = None
    yank_reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class MarketplaceTemplate(_Model):
    """A template of the catalogue (built-in ones are `official`): `rating` is `{"average", "count"}`,
    `usage` `{"total", "last30_days"}`, `deprecation` None or `{"message", "replacement"}`, `owner`
    the owning organization's slug (None for official ones). `readme`, `ports`, `smoke`, `workdir`,
    `default_resources` and `versions` (newest first) are set by `marketplace.template()` only."""

    name: str
    display_name: str = ""
    description: str = ""
    icon: str = ""
    tags: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    official: bool = False
    built_in: bool = False
    featured: bool = False
    featured_rank: int = 0
    visibility: str = "public"
    owner: str | None = None
    latest_version: str = ""
    image_size: int | None = None
    deprecation: dict[str, Any] | None = None
    rating: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None
    readme: str = ""
    ports: list[Any] = field(default_factory=list)
    smoke: str = ""
    workdir: str = ""
    default_resources: dict[str, Any] = field(default_factory=dict)
    versions: list[TemplateVersion] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        values = _pick(cls, data)
        values["versions"] = [TemplateVersion.from_api(item) for item in data.get("versions") or []]
        values["usage"] = snake_keys(data.get("usage") or {})
        return cls(**values, raw=data)

    @property
    def rating_average(self) -> float | None:
        return self.rating.get("average")

    @property
    def rating_count(self) -> int:
        return int(self.rating.get("count") or 0)


@dataclass
class Review(_Model):
    """A user's rating (1-5) and text of a template: one per user, sent again it is edited."""

    user: str
    rating: int
    text: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
