"""The object types. Each wraps a model row (a `Private` field) and resolves through the same
selectors and services as the REST views, with the same scopes; no business logic here.
Field names are REST's (camelCase in the schema); ids are global (relay.py), and the REST id of
each object is beside it (`sandboxId`, `executionId`, …) for use with the REST API and the SDKs."""

import datetime as dt

import strawberry
from django.utils.dateparse import parse_datetime
from strawberry.scalars import JSON
from strawberry.types import Info

from apps.agents import changes as agent_changes
from apps.agents import selectors as agent_selectors
from apps.agents.api.run_serializers import AgentRunSummarySerializer, AgentTaskSerializer
from apps.agents.api.serializers import ChangeSetSerializer, ClaudeSessionSerializer
from apps.billing import selectors as billing_selectors
from apps.billing.api.serializers import SandboxCostSerializer
from apps.keys.scopes import ALL_SCOPES, BILLING_READ, SANDBOXES_READ
from apps.sandboxes import metrics as sandbox_metrics
from apps.sandboxes import models as sandbox_models
from apps.sandboxes import processes as process_service
from apps.sandboxes.api import git_schema
from apps.sandboxes.api.access import read_guard
from apps.sandboxes.api.metrics_views import SandboxMetricsSerializer
from apps.sandboxes.api.schema import FileListSerializer, ProcessSerializer
from apps.sandboxes.api.serializers import network_representation
from apps.sandboxes.services import env as env_service
from apps.sandboxes.services import files as files_service
from apps.sandboxes.services import git as git_service
from apps.webhooks import selectors as webhook_selectors
from apps.webhooks.api.serializers import DeliverySerializer
from apps.webhooks.models import Delivery
from vibebox import exceptions as errors
from vibebox.units import format_size

from .relay import Connection, Edge, Node, PageInfo, decode_cursor, encode_cursor, page_size, paginate, to_global_id
from .rest_types import answer, serializer_type

SandboxStatus = strawberry.enum(sandbox_models.Status, name="SandboxStatus")
ExecutionStatus = strawberry.enum(sandbox_models.Execution.Status, name="ExecutionStatus")
ExecutionKind = strawberry.enum(sandbox_models.Execution.Kind, name="ExecutionKind")

# What a sandbox's REST sub-resources answer, typed from their response serializers (rest_types.py).
FileList = serializer_type(FileListSerializer, "FileList", "A directory listing (GET /sandboxes/{id}/files).")
SandboxMetrics = serializer_type(SandboxMetricsSerializer, "SandboxMetrics", "GET /sandboxes/{id}/metrics.")
SandboxCost = serializer_type(SandboxCostSerializer, "SandboxCost", "GET /sandboxes/{id}/cost.")
ProcessResult = serializer_type(ProcessSerializer, "ProcessResult", "A background process.")
GitStatus = serializer_type(git_schema.GitStatusSerializer, "GitStatus", "GET /sandboxes/{id}/git/status.")
GitLog = serializer_type(git_schema.GitLogSerializer, "GitLog", "GET /sandboxes/{id}/git/log.")
ClaudeSession = serializer_type(ClaudeSessionSerializer, "ClaudeSession", "A Claude Code session.")
ChangeSet = serializer_type(ChangeSetSerializer, "ChangeSet", "Claude's changes of one ask, for review.")


@strawberry.type(description="An organization: everything you can see belongs to one.")
class Organization(Node):
    slug: str
    name: str
    personal: bool
    node_labels: JSON = strawberry.field(
        description="The node labels the engine of each of its new sandboxes must have ({} for none), as REST's."
    )
    created_at: dt.datetime

    @classmethod
    def of(cls, org) -> "Organization":
        return cls(
            id=to_global_id("Organization", org.pk),
            slug=org.slug,
            name=org.name,
            personal=org.personal_for_id is not None,
            node_labels=dict(org.node_labels or {}),
            created_at=org.created_at,
        )


@strawberry.type(description="Who is asking: the user, the organization they act in, and what they may do there.")
class Viewer:
    username: str
    email: str

    @strawberry.field(description="The organization the request acts in (the API key's, or the session's choice).")
    def organization(self, info: Info) -> Organization:
        return Organization.of(info.context.org)

    @strawberry.field(description="The permissions the viewer has in that organization (its role's).")
    def permissions(self, info: Info) -> list[str]:
        return sorted(info.context.actor.permissions)

    @strawberry.field(description="The API key's scopes; every scope for a signed-in browser session.")
    def scopes(self, info: Info) -> list[str]:
        key = info.context.key
        return list(key.scopes) if key is not None else list(ALL_SCOPES)

    @strawberry.field(description="The API key's global id, or null for a browser session.")
    def api_key_id(self, info: Info) -> strawberry.ID | None:
        key = info.context.key
        return to_global_id("ApiKey", key.pk) if key is not None else None


@strawberry.type(description="A sandbox's CPU, memory and disk (as REST's `resources`).")
class Resources:
    cpu: float
    memory: str = strawberry.field(description="Human-readable, like 1GiB.")
    memory_bytes: float
    disk: str | None


@strawberry.type(description="One command or code run in a sandbox (REST: /sandboxes/{id}/executions).")
class Execution(Node):
    _row: strawberry.Private[sandbox_models.Execution]
    execution_id: str
    sandbox_id: str
    kind: ExecutionKind
    language: str
    command: str
    cwd: str
    user: str
    status: ExecutionStatus
    exit_code: int | None
    duration: int | None = strawberry.field(description="Milliseconds.")
    stdout_bytes: float
    stderr_bytes: float
    truncated: bool
    oom_killed: bool
    started_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row) -> "Execution":
        return cls(
            _row=row,
            id=to_global_id("Execution", f"{row.sandbox_id}/{row.pk}"),  # node() finds it through its sandbox
            execution_id=row.pk,
            sandbox_id=row.sandbox_id,
            kind=sandbox_models.Execution.Kind(row.kind),
            language=row.language,
            command=row.command,
            cwd=row.cwd,
            user=row.user,
            status=sandbox_models.Execution.Status(row.status),
            exit_code=row.exit_code,
            duration=row.duration_ms,
            stdout_bytes=row.stdout_bytes,
            stderr_bytes=row.stderr_bytes,
            truncated=row.truncated,
            oom_killed=row.oom_killed,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )

    @strawberry.field(description="Its standard output (capped as REST's detail is).")
    def stdout(self) -> str:
        return self._row.stdout

    @strawberry.field(description="Its standard error (capped as REST's detail is).")
    def stderr(self) -> str:
        return self._row.stderr

    @strawberry.field(description="An `execute`'s last expression's value, as JSON.")
    def return_value(self) -> JSON | None:
        return self._row.return_value


@strawberry.type(description="A sandbox's saved image and workspace.")
class Snapshot(Node):
    snapshot_id: str
    name: str
    sandbox_id: str | None
    sandbox_name: str
    template: str
    size: float = strawberry.field(description="Bytes: imageBytes + workspaceBytes.")
    image_bytes: float
    workspace_bytes: float
    node_labels: JSON = strawberry.field(
        description="Its sandbox's node labels: creates and restores from it honour them."
    )
    created_at: dt.datetime

    @classmethod
    def of(cls, row) -> "Snapshot":
        return cls(
            id=to_global_id("Snapshot", row.pk),
            snapshot_id=row.pk,
            name=row.name,
            sandbox_id=row.sandbox_id,
            sandbox_name=row.sandbox_name,
            template=row.template.name,
            size=row.image_bytes + row.workspace_bytes,
            image_bytes=row.image_bytes,
            workspace_bytes=row.workspace_bytes,
            node_labels=dict(row.node_labels or {}),
            created_at=row.created_at,
        )


def _window(first: int | None, after: str | None) -> tuple[int, int]:
    """(offset, size) of a nested connection's page."""
    return (decode_cursor(after) + 1 if after else 0), page_size(first)


def loaded_page(rows: list, start: int, size: int, wrap, count) -> Connection:
    """A connection from a loader's rows start..start+size+1 (the extra one: is there a next page)."""
    edges = [Edge(cursor=encode_cursor(start + index), node=wrap(row)) for index, row in enumerate(rows[:size])]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size,
            has_previous_page=start > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=count,
    )


@strawberry.type(description="An isolated container with a workspace (REST: /sandboxes/{id}).")
class Sandbox(Node):
    _row: strawberry.Private[sandbox_models.Sandbox]
    sandbox_id: str = strawberry.field(description="The REST id (sbx_…).")
    name: str
    template: str = strawberry.field(description="The template's name.")
    template_version: str
    status: SandboxStatus
    status_reason: str
    ephemeral: bool
    timeout: int | None = strawberry.field(description="Seconds.")
    expires_at: dt.datetime | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    stopped_at: dt.datetime | None
    destroyed_at: dt.datetime | None
    paused_at: dt.datetime | None
    last_activity_at: dt.datetime | None
    warm: bool
    auto_pause: int | None = strawberry.field(description="Seconds.")
    auto_resume: bool
    pause_stops_timeout: bool
    metadata: JSON
    node_labels: JSON = strawberry.field(
        description="The node labels its engine has to have (the create's, its template's, its organization's and its "
        "snapshot's, merged), as REST's `nodeLabels`."
    )

    @classmethod
    def of(cls, row) -> "Sandbox":
        return cls(
            _row=row,
            id=to_global_id("Sandbox", row.pk),
            sandbox_id=row.pk,
            name=row.name,
            template=row.template.name,
            template_version=row.template_version,
            status=sandbox_models.Status(row.status),
            status_reason=row.status_reason,
            ephemeral=row.ephemeral,
            timeout=row.timeout_seconds,
            expires_at=row.expires_at,
            created_at=row.created_at,
            started_at=row.started_at,
            stopped_at=row.stopped_at,
            destroyed_at=row.destroyed_at,
            paused_at=row.paused_at,
            last_activity_at=row.last_activity_at,
            warm=row.warm,
            auto_pause=row.auto_pause_seconds,
            auto_resume=row.auto_resume,
            pause_stops_timeout=row.pause_stops_timeout,
            metadata=row.metadata,
            node_labels=dict(row.node_labels or {}),
        )

    @strawberry.field
    def resources(self) -> Resources:
        row = self._row
        return Resources(
            cpu=row.cpu,
            memory=format_size(row.memory),
            memory_bytes=row.memory,
            disk=format_size(row.disk) if row.disk else None,
        )

    @strawberry.field(description="Its network policy and address, as REST's `network`.")
    def network(self) -> JSON:
        return network_representation(self._row)

    @strawberry.field(description="Its executions, newest first (batched across a page of sandboxes).")
    def executions(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Execution]:
        info.context.require_scopes(SANDBOXES_READ)
        loaders, sandbox_id = info.context.loaders, self._row.pk
        start, size = _window(first, after)
        rows = loaders.executions(sandbox_id, offset=start, limit=size + 1)
        return loaded_page(rows, start, size, Execution.of, lambda: loaders.execution_count(sandbox_id))

    @strawberry.field(description="Its newest execution, or null (batched across a page of sandboxes).")
    def last_execution(self, info: Info) -> Execution | None:
        info.context.require_scopes(SANDBOXES_READ)
        rows = info.context.loaders.executions(self._row.pk, offset=0, limit=1)
        return Execution.of(rows[0]) if rows else None

    @strawberry.field(description="Its snapshots you may see, newest first.")
    def snapshots(self, info: Info) -> list[Snapshot] | None:
        info.context.require_scopes(SANDBOXES_READ)
        rows = info.context.loaders.snapshots(self._row.pk, actor=info.context.actor)
        return [Snapshot.of(row) for row in rows]

    # What REST serves under /sandboxes/{id}/…, each through the same service and serializer, so a
    # field is exactly its endpoint's answer (JSON where the endpoint's payload is free-form).

    @strawberry.field(description="The names of its environment variables (values are never listed here).")
    def env(self, info: Info) -> list[str] | None:
        info.context.require_scopes(SANDBOXES_READ)
        return list(env_service.public(self._row))

    @strawberry.field(description="A directory listing, as GET /sandboxes/{id}/files?path=&recursive=.")
    def files(self, info: Info, path: str = "", recursive: bool = False) -> FileList | None:
        info.context.require_scopes(SANDBOXES_READ)
        read_guard(info.context.guard_request, self._row)
        entries = files_service.file_list(sandbox=self._row, path=path, recursive=recursive)
        return answer(FileList, FileListSerializer, {"path": files_service.resolve(path), "entries": entries})

    @strawberry.field(description="Its git repository's status and log (GET /sandboxes/{id}/git/…).")
    def git(self, info: Info, path: str | None = None) -> "Git | None":
        info.context.require_scopes(SANDBOXES_READ)
        return Git(_sandbox=self._row, _path=path)

    @strawberry.field(description="CPU, memory, disk and pids now, as GET /sandboxes/{id}/metrics.")
    def metrics(self, info: Info) -> SandboxMetrics | None:
        info.context.require_scopes(SANDBOXES_READ)
        return answer(SandboxMetrics, SandboxMetricsSerializer, sandbox_metrics.sandbox_metrics(sandbox=self._row))

    @strawberry.field(description="What it cost so far, as GET /sandboxes/{id}/cost (billing:read).")
    def cost(self, info: Info) -> SandboxCost | None:
        info.context.require_scopes(BILLING_READ)
        found = billing_selectors.sandbox_cost(actor=info.context.actor, ref=self._row.pk)
        return answer(SandboxCost, SandboxCostSerializer, found)

    @strawberry.field(description="Its running background processes, as GET /sandboxes/{id}/processes.")
    def processes(self, info: Info) -> list[ProcessResult] | None:
        info.context.require_scopes(SANDBOXES_READ)
        return [answer(ProcessResult, ProcessSerializer, p) for p in process_service.process_list(sandbox=self._row)]

    @strawberry.field(description="Claude Code in it: sessions and pending change sets.")
    def claude(self, info: Info) -> "Claude | None":
        info.context.require_scopes(SANDBOXES_READ)
        return Claude(_sandbox=self._row)


@strawberry.type(description="A sandbox's git repository (REST: /sandboxes/{id}/git/status and /git/log).")
class Git:
    _sandbox: strawberry.Private[sandbox_models.Sandbox]
    _path: strawberry.Private[str | None]

    @strawberry.field(description="As GET /git/status.")
    def status(self, info: Info) -> GitStatus:
        read_guard(info.context.guard_request, self._sandbox)
        found = git_service.git_status(sandbox=self._sandbox, path=self._path)
        return answer(GitStatus, git_schema.GitStatusSerializer, found)

    @strawberry.field(description="As GET /git/log (limit: default 20, at most 500).")
    def log(self, info: Info, limit: int = 20) -> GitLog:
        read_guard(info.context.guard_request, self._sandbox)
        found = git_service.git_log(sandbox=self._sandbox, path=self._path, limit=limit)
        return answer(GitLog, git_schema.GitLogSerializer, found)


@strawberry.type(description="Claude Code in a sandbox (REST: /sandboxes/{id}/claude/…).")
class Claude:
    _sandbox: strawberry.Private[sandbox_models.Sandbox]

    @strawberry.field(description="As GET /claude/sessions (the newest 200).")
    def sessions(self) -> list[ClaudeSession]:
        found = agent_selectors.session_list(sandbox=self._sandbox)[:200]
        return [answer(ClaudeSession, ClaudeSessionSerializer, session) for session in found]

    @strawberry.field(description="As GET /claude/changes?status=pending (the newest 100, with their diffs).")
    def pending_changes(self, info: Info, diff: bool = True) -> list[ChangeSet]:
        found = list(agent_changes.change_sets(sandbox=self._sandbox, session_id=None, status="pending")[:100])
        diffs = {}
        if diff and found:
            read_guard(info.context.guard_request, self._sandbox)  # diffs run git in the sandbox
            diffs = {c.id: agent_changes.change_diff(self._sandbox, c) for c in found}
        return [answer(ChangeSet, ChangeSetSerializer, c, context={"diffs": diffs}) for c in found]


# Types rendered from the REST serializers' output, so each field is exactly REST's value. ---------


def from_rest(cls, data: dict, **extra):
    """A `cls` from a REST representation (camelCase keys); timestamps are parsed back to datetimes."""
    kwargs = {}
    for field in cls.__strawberry_definition__.fields:
        name = field.python_name
        if name in extra or field.base_resolver is not None or name.startswith("_"):
            continue
        camel = strawberry_camel(name)
        value = data.get(camel)
        if isinstance(value, str) and name.endswith("_at"):
            value = parse_datetime(value)
        kwargs[name] = value
    return cls(**kwargs, **extra)


def strawberry_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type(description="A sandbox template (REST: /templates).")
class Template(Node):
    name: str
    aliases: list[str]
    display_name: str
    description: str
    version: int
    image: str
    language: str
    languages: list[str]
    package_managers: list[str]
    user: str
    workdir: str
    default_env: JSON
    ports: JSON
    smoke: str
    built_in: bool
    image_size: float | None
    build_state: str
    build_message: str
    official: bool
    visibility: str
    latest_version: str
    node_labels: JSON = strawberry.field(description="The node labels its sandboxes' engine must have (template.yaml).")


@strawberry.type(description="A marketplace catalogue entry (REST: /marketplace/templates), with its stats.")
class MarketplaceTemplate(Node):
    name: str
    display_name: str | None
    description: str | None
    official: bool | None
    details: JSON = strawberry.field(description="The whole REST representation (ratings, uses, tags…).")


@strawberry.type(description="An API key (never its secret; REST: /keys).")
class ApiKey(Node):
    key_id: str
    name: str
    org: str | None
    user: str
    prefix: str
    test: bool
    scopes: list[str]
    rate_limit: str
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    rotated_from: str | None
    active: bool


@strawberry.type(description="One delivery of an event to a webhook (REST: /webhooks/{id}/deliveries).")
class WebhookDelivery(Node):
    delivery_id: str
    webhook_id: str
    event_id: str
    event: str
    status: str
    attempts: int
    response_status: int | None
    duration_ms: int | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    redelivery_of: str | None


@strawberry.type(description="A webhook (REST: /webhooks; never its secret).")
class Webhook(Node):
    _row: strawberry.Private[object]
    webhook_id: str
    url: str
    events: list[str]
    description: str
    active: bool
    filter: JSON
    disabled_reason: str
    previous_secret_expires_at: dt.datetime | None

    @strawberry.field(description="Its deliveries, newest first (REST: GET /webhooks/{id}/deliveries).")
    def deliveries(
        self, status: str | None = None, event: str | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[WebhookDelivery]:
        if status is not None and status not in Delivery.Status.values:
            raise errors.ValidationFailed(
                f"status is one of {', '.join(Delivery.Status.values)}.",
                details={"fields": {"status": [{"message": "not a delivery status", "code": "invalid_choice"}]}},
            )
        rows = webhook_selectors.delivery_list(webhook=self._row, status=status, event=event)

        def wrap(row):
            data = DeliverySerializer(row).data
            return from_rest(WebhookDelivery, data, id=to_global_id("WebhookDelivery", row.pk), delivery_id=row.pk)

        return paginate(rows, first=first, after=after, wrap=wrap)


@strawberry.type(description="An audit log entry (REST: /orgs/{slug}/audit-log).")
class AuditEntry:
    seq: int
    created_at: dt.datetime
    actor: str
    actor_user_id: int | None
    key_id: str
    source: str
    ip: str
    user_agent: str
    action: str
    target_type: str
    target_id: str
    changes: JSON
    prev_hash: str
    hash: str


@strawberry.type(description="A task of an agent run (REST: /agent-runs/{id}/tasks/{taskId}); `id` is its REST id.")
class AgentTask:
    id: str
    index: int
    name: str
    status: str
    sandbox_id: str | None
    attempts: int
    error: str | None
    result: JSON | None
    metadata: JSON
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, row) -> "AgentTask":
        return from_rest(cls, AgentTaskSerializer(row).data)


@strawberry.type(description="An agent run (REST: /agent-runs).")
class AgentRun(Node):
    _row: strawberry.Private[object]
    run_id: str
    name: str
    kind: str
    status: str
    parallelism: int | None
    template: str | None
    metadata: JSON
    counts: JSON
    created_at: dt.datetime
    finished_at: dt.datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, row) -> "AgentRun":
        """A run as agent_runs.agent_run_get/agent_run_list answer it (its counts annotated)."""
        data = AgentRunSummarySerializer(row).data
        return from_rest(cls, data, id=to_global_id("AgentRun", row.pk), run_id=row.pk, _row=row)

    @strawberry.field(description="Its tasks in index order (REST: the run's `tasks`; batched across a page of runs).")
    def tasks(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[AgentTask]:
        loaders, run_id = info.context.loaders, self._row.pk
        loaders.seen_runs([self._row])  # a run fetched alone (node, a mutation's answer) loads too
        start, size = _window(first, after)
        rows = loaders.agent_tasks(run_id, offset=start, limit=size + 1)
        return loaded_page(rows, start, size, AgentTask.of, lambda: loaders.agent_task_count(run_id))
