"""The object types. Each wraps a model row (a `Private` field) and resolves through the same
selectors and services as the REST views, with the same scopes; no business logic here.
Field names are REST's (camelCase in the schema); ids are global (relay.py), and the REST id of
each object is beside it (`sandboxId`, `executionId`, …) for use with the REST API and the SDKs."""

import datetime as dt

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from apps.keys.scopes import ALL_SCOPES, SANDBOXES_READ
from apps.sandboxes import models as sandbox_models
from apps.sandboxes.api.serializers import network_representation
from vibebox.units import format_size

from .relay import Connection, Edge, Node, PageInfo, decode_cursor, encode_cursor, page_size, to_global_id

SandboxStatus = strawberry.enum(sandbox_models.Status, name="SandboxStatus")
ExecutionStatus = strawberry.enum(sandbox_models.Execution.Status, name="ExecutionStatus")
ExecutionKind = strawberry.enum(sandbox_models.Execution.Kind, name="ExecutionKind")


@strawberry.type(description="An organization: everything you can see belongs to one.")
class Organization(Node):
    slug: str
    name: str
    personal: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, org) -> "Organization":
        return cls(
            id=to_global_id("Organization", org.pk),
            slug=org.slug,
            name=org.name,
            personal=org.personal_for_id is not None,
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
            created_at=row.created_at,
        )


def _window(first: int | None, after: str | None) -> tuple[int, int]:
    """(offset, size) of a nested connection's page."""
    return (decode_cursor(after) + 1 if after else 0), page_size(first)


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
        loaders = info.context.loaders
        start, size = _window(first, after)
        rows = loaders.executions(self._row.pk, offset=start, limit=size + 1)
        has_next = len(rows) > size
        edges = [
            Edge(cursor=encode_cursor(start + index), node=Execution.of(row)) for index, row in enumerate(rows[:size])
        ]
        sandbox_id = self._row.pk
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=start > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _count=lambda: loaders.execution_count(sandbox_id),
        )

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
