"""Reads for sandboxes, always scoped to the owner: another owner's sandbox is a 404."""

from django.db.models import QuerySet

from vibebox import exceptions as errors

from . import states
from .models import Sandbox, Snapshot, Status


def sandbox_list(
    *,
    owner,
    status: list[str] | None = None,
    template: str | None = None,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
) -> QuerySet[Sandbox]:
    """Live sandboxes by default; pass `status=["destroyed"]` to see destroyed ones."""
    # Prefetched, not joined: a page shares a few templates, each read (and its JSON decoded) once.
    qs = Sandbox.objects.filter(owner=owner).prefetch_related("template")
    qs = qs.filter(status__in=status) if status else qs.filter(status__in=states.ALIVE)
    if template:
        qs = qs.filter(template__name=template)
    if name:
        qs = qs.filter(name=name)
    for key, value in (metadata or {}).items():
        qs = qs.filter(**{f"metadata__{key}": value})
    return qs


def sandbox_get(*, owner, ref: str) -> Sandbox:
    """By id (`sbx_…`) or by name (live sandboxes only)."""
    qs = Sandbox.objects.filter(owner=owner).select_related("template")
    try:  # get(), not first(): no ORDER BY to build on every call (ids and live names are unique)
        if ref.startswith("sbx_"):
            return qs.get(pk=ref)
        return qs.exclude(status=Status.DESTROYED).get(name=ref)
    except Sandbox.DoesNotExist:
        raise errors.SandboxNotFound(details={"sandbox": ref}) from None


def execution_list(*, sandbox: Sandbox):
    return sandbox.executions.all()


def execution_get(*, sandbox: Sandbox, id: str):
    execution = sandbox.executions.filter(pk=id).first()
    if execution is None:
        raise errors.ExecutionNotFound(details={"executionId": id})
    return execution


def snapshot_get(*, owner, snapshot_id: str) -> Snapshot:
    snapshot = Snapshot.objects.filter(owner=owner, pk=snapshot_id).select_related("template").first()
    if snapshot is None:
        raise errors.SnapshotNotFound(details={"snapshot": snapshot_id})
    return snapshot


def snapshot_list(*, owner, sandbox: Sandbox | None = None) -> QuerySet[Snapshot]:
    qs = Snapshot.objects.filter(owner=owner).select_related("template")
    return qs.filter(sandbox=sandbox) if sandbox is not None else qs
