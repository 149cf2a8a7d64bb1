"""`Query`: each field calls the selector its REST endpoint calls, with the same scope."""

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes import selectors as sandbox_selectors
from vibebox import exceptions as errors

from . import types
from .relay import Connection, Node, from_global_id, paginate, pk_of


@strawberry.input(
    description="As REST's list filters: statuses (default: all but destroyed), template, name, metadata."
)
class SandboxFilter:
    status: list[types.SandboxStatus] | None = None
    template: str | None = None
    name: str | None = None
    metadata: JSON | None = strawberry.field(default=None, description='Exact values to match, e.g. {"team": "ml"}.')


def _sandbox(info: Info, ref: str) -> types.Sandbox:
    row = sandbox_selectors.sandbox_get(actor=info.context.actor, ref=ref)
    info.context.loaders.seen([row])
    return types.Sandbox.of(row)


def _node_sandbox(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    return _sandbox(info, pk)


def _node_execution(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    sandbox_id, _, execution_id = pk.partition("/")  # an execution's global id names its sandbox too
    sandbox = sandbox_selectors.sandbox_get(actor=info.context.actor, ref=sandbox_id) if sandbox_id else None
    if sandbox is None or not sandbox_id.startswith("sbx_"):
        raise errors.ExecutionNotFound(details={"executionId": execution_id or pk})
    return types.Execution.of(sandbox_selectors.execution_get(sandbox=sandbox, id=execution_id))


def _node_snapshot(info: Info, pk: str):
    info.context.require_scopes(SANDBOXES_READ)
    return types.Snapshot.of(sandbox_selectors.snapshot_get(actor=info.context.actor, snapshot_id=pk))


def _node_organization(info: Info, pk: str):
    if pk != info.context.org.pk:  # only the one the request acts in, as REST scopes everything to it
        raise errors.OrgNotFound(details={"org": pk})
    return types.Organization.of(info.context.org)


NODES = {
    "Sandbox": _node_sandbox,
    "Execution": _node_execution,
    "Snapshot": _node_snapshot,
    "Organization": _node_organization,
}


@strawberry.type
class Query:
    @strawberry.field(description="Who is asking, and where.")
    def viewer(self, info: Info) -> types.Viewer:
        user = info.context.user
        return types.Viewer(username=user.get_username(), email=user.email or "")

    @strawberry.field(description="The organization the request acts in.")
    def organization(self, info: Info) -> types.Organization:
        return types.Organization.of(info.context.org)

    @strawberry.field(description="Any object by its global id; another organization's: null and a *_not_found error.")
    def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, pk = from_global_id(id)
        resolve = NODES.get(type_name)
        if resolve is None:
            raise errors.NotFound("No object has this id.", details={"id": str(id)})
        return resolve(info, pk)

    @strawberry.field(description="Sandboxes of the organization, newest first (REST: GET /sandboxes).")
    def sandboxes(
        self, info: Info, filter: SandboxFilter | None = None, first: int | None = None, after: str | None = None
    ) -> Connection[types.Sandbox] | None:
        info.context.require_scopes(SANDBOXES_READ)
        filter = filter or SandboxFilter()
        metadata = filter.metadata or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise errors.InvalidMetadata("filter.metadata is an object of strings.")
        rows = sandbox_selectors.sandbox_list(
            actor=info.context.actor,
            status=[status.value for status in filter.status] if filter.status else None,
            template=filter.template or None,
            name=filter.name or None,
            metadata=metadata,
        )
        return paginate(rows, first=first, after=after, wrap=types.Sandbox.of, on_page=info.context.loaders.seen)

    @strawberry.field(description="One sandbox by its global id, its REST id (sbx_…) or its name.")
    def sandbox(self, info: Info, id: strawberry.ID | None = None, name: str | None = None) -> types.Sandbox | None:
        info.context.require_scopes(SANDBOXES_READ)
        if (id is None) == (name is None):
            raise errors.ValidationFailed("Give either id or name.")
        if id is not None and not str(id).startswith("sbx_"):
            return _sandbox(info, pk_of(id, "Sandbox", errors.SandboxNotFound))
        return _sandbox(info, str(id) if id is not None else name)
