"""Reads for sandboxes and snapshots, always scoped to the actor's organization: another
organization's sandbox is a 404; one of your own organization that you may not reach the way you
ask is a 403 naming the permission.

What reaching a sandbox needs (`need`):
- READ (look: the sandbox, its executions, logs, files, metrics): your own, or `sandboxes.read`;
- USE (run commands and code, write files, git, terminals, processes): `sandboxes.exec`, and for
  another member's sandbox `sandboxes.manage_all` too;
- MANAGE (start, stop, pause, update, destroy, snapshot, environment, grants): your own with
  `sandboxes.create`, another member's with `sandboxes.manage_all`.

A grant (SandboxGrant) shares one sandbox with a member, or with every member of a team, at a
level that includes those below it (read < use < manage), whatever their role's `sandboxes.*`
permissions: it widens what the role allows, never narrows it. Grants are read only when the role
refuses, so reaching one's own sandbox costs no query. An API key's scopes limit a grant as they
limit a role (checked by the views, before any of this).
"""

from django.db.models import Q, QuerySet

from apps.marketplace.selectors import template_find
from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from . import states
from .models import GitHook, Node, Sandbox, SandboxGrant, Snapshot, Status

READ, USE, MANAGE = "read", "use", "manage"
LEVELS = {READ: 0, USE: 1, MANAGE: 2}  # a grant's level includes those below it


def check_access(actor: Actor, *, owner_id, need: str, sandbox_id: str | None) -> None:
    """Refuses (403 naming the permission the role lacks) unless the actor's role, or a grant on
    `sandbox_id` (None: what is reached is no sandbox's, e.g. an agent run: the role alone), lets
    them reach a sandbox of `owner_id` as `need` says."""
    try:
        _check_role(actor, owner_id=owner_id, need=need)
    except errors.PermissionDenied:
        if sandbox_id is None or granted_level(actor, sandbox_id=sandbox_id) < LEVELS[need]:
            raise


def granted_level(actor: Actor, *, sandbox_id: str) -> int:
    """The highest level (LEVELS) the actor's grants on the sandbox give, direct or through a team
    they are in now; -1 without any."""
    levels = grants_of(actor.user).filter(sandbox_id=sandbox_id).values_list("access", flat=True)
    return max((LEVELS[level] for level in levels), default=-1)


def grants_of(user) -> QuerySet[SandboxGrant]:
    """The grants that reach `user`: to them, or to a team they are in (read live)."""
    return SandboxGrant.objects.filter(Q(user=user) | Q(team__members=user))


def _check_role(actor: Actor, *, owner_id, need: str) -> None:
    if need not in LEVELS:
        raise ValueError(f"unknown need {need!r}")
    own = owner_id == actor.user.pk
    if need == READ:
        if not own:
            actor.require("sandboxes.read")
    elif need == USE:
        actor.require("sandboxes.exec")
        if not own:
            actor.require("sandboxes.manage_all")
    else:
        actor.require("sandboxes.create" if own else "sandboxes.manage_all")


def sandbox_list(
    *,
    actor: Actor,
    status: list[str] | None = None,
    template: str | None = None,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
) -> QuerySet[Sandbox]:
    """Live sandboxes by default; pass `status=["destroyed"]` to see destroyed ones. Without
    `sandboxes.read`, only the actor's own and those granted to them (directly or through a team)."""
    # Prefetched, not joined: a page shares a few templates, each read (and its JSON decoded) once.
    qs = Sandbox.objects.filter(org=actor.org).prefetch_related("template")
    if not actor.can("sandboxes.read"):
        qs = qs.filter(Q(owner=actor.user) | Q(pk__in=grants_of(actor.user).values("sandbox_id")))
    qs = qs.filter(status__in=status) if status else qs.filter(status__in=states.ALIVE)
    if template:  # by name or alias (`python-3` lists python-3.13's)
        found = template_find(template, org=actor.org)
        qs = qs.filter(template=found) if found is not None else qs.filter(template__name=template)
    if name:
        qs = qs.filter(name=name)
    for key, value in (metadata or {}).items():
        qs = qs.filter(**{f"metadata__{key}": value})
    return qs


def sandbox_get(*, actor: Actor, ref: str, need: str = READ) -> Sandbox:
    """By id (`sbx_…`) or by name (live sandboxes only; names are unique per member: the actor's
    own first, else the organization's only one by that name)."""
    # Its node too: every engine call for it goes through driver_for(sandbox) (no second query).
    qs = Sandbox.objects.filter(org=actor.org).select_related("template", "node")
    try:  # get(), not first(): no ORDER BY to build on every call (ids are unique)
        sandbox = qs.get(pk=ref) if ref.startswith("sbx_") else _by_name(actor, qs, ref)
    except Sandbox.DoesNotExist:
        raise errors.SandboxNotFound(details={"sandbox": ref}) from None
    check_access(actor, owner_id=sandbox.owner_id, need=need, sandbox_id=sandbox.pk)
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
    """A snapshot is reached as its sandbox would be (READ to use it for a new sandbox, MANAGE to
    delete it); its sandbox's grants give READ only (deleting one is its owner's role's matter)."""
    snapshot = Snapshot.objects.filter(org=actor.org, pk=snapshot_id).select_related("template", "node").first()
    if snapshot is None:
        raise errors.SnapshotNotFound(details={"snapshot": snapshot_id})
    granted_by = snapshot.sandbox_id if need == READ else None
    check_access(actor, owner_id=snapshot.owner_id, need=need, sandbox_id=granted_by)
    return snapshot


def snapshot_list(*, actor: Actor, sandbox: Sandbox | None = None) -> QuerySet[Snapshot]:
    """Without `sandboxes.read`, the actor's own and those of sandboxes granted to them."""
    qs = Snapshot.objects.filter(org=actor.org).select_related("template")
    if not actor.can("sandboxes.read"):
        qs = qs.filter(Q(owner=actor.user) | Q(sandbox__in=grants_of(actor.user).values("sandbox_id")))
    return qs.filter(sandbox=sandbox) if sandbox is not None else qs


def grant_list(*, sandbox: Sandbox) -> QuerySet[SandboxGrant]:
    return SandboxGrant.objects.filter(sandbox=sandbox).select_related("user", "team", "created_by")


def grant_get(*, sandbox: Sandbox, grant_id: str) -> SandboxGrant:
    grant = grant_list(sandbox=sandbox).filter(pk=grant_id).first()
    if grant is None:
        raise errors.GrantNotFound(details={"grant": grant_id[:64]})
    return grant


def git_hook_list(*, sandbox: Sandbox):
    return GitHook.objects.filter(sandbox=sandbox)  # at most VIBEBOX_GIT_HOOKS_PER_SANDBOX


def git_hook_deliveries(*, hook: GitHook, limit: int = 10):
    return list(hook.deliveries.order_by("-received_at", "-id")[:limit])


def git_hook_get(*, sandbox: Sandbox, hook_id: str) -> GitHook:
    hook = GitHook.objects.filter(sandbox=sandbox, pk=hook_id).first()
    if hook is None:
        raise errors.GitHookNotFound(details={"hook": hook_id[:64]})
    return hook


def nodes_list() -> QuerySet[Node]:
    """The registered nodes (the local engine, the implicit default node, has no row)."""
    return Node.objects.all()


def node_get(*, name: str) -> Node:
    """A registered node by name (NotFound when none is)."""
    node = Node.objects.filter(name=name).first()
    if node is None:
        raise errors.NotFound(f"No node is named {name!r}.")
    return node
