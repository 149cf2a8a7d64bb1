"""Reads for sandboxes and snapshots, always scoped to the actor's organization: another
organization's sandbox is a 404; one of your own organization that you may not reach the way you
ask is a 403 naming the permission.

What reaching a sandbox needs (`need`):
- READ (look: the sandbox, its executions, logs, files, metrics): your own, or `sandboxes.read`;
- USE (run commands and code, write files, git, terminals, processes): `sandboxes.exec`, and for
  another member's sandbox `sandboxes.manage_all` too;
- MANAGE (start, stop, pause, update, destroy, snapshot, environment): your own with
  `sandboxes.create`, another member's with `sandboxes.manage_all`.
"""

from django.db.models import QuerySet

from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from . import states
from .models import Sandbox, Snapshot, Status

READ, USE, MANAGE = "read", "use", "manage"


def check_access(actor: Actor, *, owner_id, need: str) -> None:
    own = owner_id == actor.user.pk
    if need == READ:
        if not own:
            actor.require("sandboxes.read")
    elif need == USE:
        actor.require("sandboxes.exec")
        if not own:
            actor.require("sandboxes.manage_all")
    elif need == MANAGE:
        actor.require("sandboxes.create" if own else "sandboxes.manage_all")
    else:
        raise ValueError(f"unknown need {need!r}")


def sandbox_list(
    *,
    actor: Actor,
    status: list[str] | None = None,
    template: str | None = None,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
) -> QuerySet[Sandbox]:
    """Live sandboxes by default; pass `status=["destroyed"]` to see destroyed ones. Without
    `sandboxes.read`, only the actor's own."""
    # Prefetched, not joined: a page shares a few templates, each read (and its JSON decoded) once.
    qs = Sandbox.objects.filter(org=actor.org).prefetch_related("template")
    if not actor.can("sandboxes.read"):
        qs = qs.filter(owner=actor.user)
    qs = qs.filter(status__in=status) if status else qs.filter(status__in=states.ALIVE)
    if template:
        qs = qs.filter(template__name=template)
    if name:
        qs = qs.filter(name=name)
    for key, value in (metadata or {}).items():
        qs = qs.filter(**{f"metadata__{key}": value})
    return qs


def sandbox_get(*, actor: Actor, ref: str, need: str = READ) -> Sandbox:
    """By id (`sbx_…`) or by name (live sandboxes only; names are unique per member: the actor's
    own first, else the organization's only one by that name)."""
    qs = Sandbox.objects.filter(org=actor.org).select_related("template")
    try:  # get(), not first(): no ORDER BY to build on every call (ids are unique)
        sandbox = qs.get(pk=ref) if ref.startswith("sbx_") else _by_name(actor, qs, ref)
    except Sandbox.DoesNotExist:
        raise errors.SandboxNotFound(details={"sandbox": ref}) from None
    check_access(actor, owner_id=sandbox.owner_id, need=need)
    return sandbox


def _by_name(actor: Actor, qs: QuerySet[Sandbox], name: str) -> Sandbox:
    named = list(qs.exclude(status=Status.DESTROYED).filter(name=name)[:20])
    own = [sandbox for sandbox in named if sandbox.owner_id == actor.user.pk]
    if own:
        return own[0]
    if len(named) == 1:
        return named[0]
    if not named:
        raise Sandbox.DoesNotExist
    raise errors.SandboxNameAmbiguous(details={"name": name, "sandboxes": sorted(sandbox.id for sandbox in named)})


def execution_list(*, sandbox: Sandbox):
    return sandbox.executions.all()


def execution_get(*, sandbox: Sandbox, id: str):
    execution = sandbox.executions.filter(pk=id).first()
    if execution is None:
        raise errors.ExecutionNotFound(details={"executionId": id})
    return execution


def snapshot_get(*, actor: Actor, snapshot_id: str, need: str = READ) -> Snapshot:
    """A snapshot is reached as its sandbox would be (READ to use it for a new sandbox, MANAGE to delete it)."""
    snapshot = Snapshot.objects.filter(org=actor.org, pk=snapshot_id).select_related("template").first()
    if snapshot is None:
        raise errors.SnapshotNotFound(details={"snapshot": snapshot_id})
    check_access(actor, owner_id=snapshot.owner_id, need=need)
    return snapshot


def snapshot_list(*, actor: Actor, sandbox: Sandbox | None = None) -> QuerySet[Snapshot]:
    qs = Snapshot.objects.filter(org=actor.org).select_related("template")
    if not actor.can("sandboxes.read"):
        qs = qs.filter(owner=actor.user)
    return qs.filter(sandbox=sandbox) if sandbox is not None else qs
