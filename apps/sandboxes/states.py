"""The one place that moves sandboxes between states.

    creating -> running | stopped          (autoStart false: stopped)
    stopped  -> starting -> running
    running | paused -> stopping -> stopped
    running | stopped -> starting -> running   (restart)
    running <-> paused
    any but destroyed -> destroying -> destroyed
    anything -> error (with a reason), when the engine says the container is gone
    error -> starting -> stopped | running | paused   (recover: its container made again, or found)
    running | paused -> unreachable -> running | paused | stopped | error
                                              (its node is down; back to what the node's engine
                                               says when it returns: docs/nodes.md)

When the engine fails a move, the row follows the container (`of_container`): back where it
was, `stopped` or `error` with a reason, or on to the target when the engine did the move and
only its answer was lost.

Each move is a conditional UPDATE (`WHERE status IN (...)`), so of two concurrent
requests only one can win; the loser gets 409 sandbox_state_conflict.
"""

from django.db import transaction
from django.utils import timezone

from vibebox import exceptions as errors

from .models import Sandbox, Status

ALIVE = [s for s in Status.values if s != Status.DESTROYED]

START_FROM = {Status.STOPPED}
STOP_FROM = {Status.RUNNING, Status.PAUSED}
RESTART_FROM = {Status.RUNNING, Status.STOPPED}
PAUSE_FROM = {Status.RUNNING}
RESUME_FROM = {Status.PAUSED}
DESTROY_FROM = set(ALIVE)
RECOVER_FROM = {Status.ERROR}
# The lifecycle actions and the states each may start from, in the order interfaces offer them.
ACTIONS_FROM = {
    "start": START_FROM,
    "stop": STOP_FROM,
    "restart": RESTART_FROM,
    "pause": PAUSE_FROM,
    "resume": RESUME_FROM,
    "recover": RECOVER_FROM,
    "destroy": DESTROY_FROM,
}
UPDATE_FROM = set(ALIVE) - {Status.DESTROYING}
TRANSITIONAL = {Status.CREATING, Status.STARTING, Status.STOPPING, Status.DESTROYING}
# A node that went down takes its running and paused sandboxes to `unreachable` (nodes.node_check);
# when it returns, reconcile moves each to what the node's engine says (of_container).
UNREACHABLE_FROM = {Status.RUNNING, Status.PAUSED}
RETURN_TO = {Status.RUNNING, Status.PAUSED, Status.STOPPED, Status.ERROR}
NODE_DOWN = "node down"  # the status reason of an unreachable sandbox
LOST_WITH_NODE = "container lost with node"  # ... of one whose container was gone when its node returned


def actions_from(status: str) -> list[str]:
    """The lifecycle actions a sandbox in `status` accepts (what a dashboard offers)."""
    return [action for action, allowed in ACTIONS_FROM.items() if status in allowed]


def move(sandbox: Sandbox, from_statuses, to: str, **fields) -> bool:
    """Conditionally moves the sandbox to `to`; refreshes the instance either way."""
    now = timezone.now()
    updated = Sandbox.objects.filter(pk=sandbox.pk, status__in=list(from_statuses)).update(
        status=to, updated_at=now, **fields
    )
    try:
        sandbox.refresh_from_db()
    except Sandbox.DoesNotExist:  # a create that failed meanwhile removed its row (a destroy raced it)
        raise errors.SandboxNotFound(details={"sandbox": sandbox.pk}) from None
    return bool(updated)


def claim(sandbox: Sandbox, from_statuses, to: str, action: str, **fields) -> str:
    """Like move(), but a loss is a 409. Returns the status the sandbox had before the move, read
    from its row, locked for the move (the instance may be stale: a node went down meanwhile and
    its row is `unreachable`, another request stopped it...)."""
    with transaction.atomic():
        rows = Sandbox.objects.select_for_update().filter(pk=sandbox.pk)
        before = rows.values_list("status", flat=True).first()
        moved = move(sandbox, from_statuses, to, **fields)
    if not moved:
        if sandbox.status == Status.UNREACHABLE:
            raise errors.SandboxUnreachable(details={"status": sandbox.status})
        raise errors.SandboxStateConflict(
            f"Cannot {action} a sandbox that is {sandbox.status}.",
            details={"status": sandbox.status, "allowedFrom": sorted(from_statuses)},
        )
    return before


def require_reachable(sandbox: Sandbox) -> None:
    """409 sandbox_unreachable for a sandbox whose node is down: nothing can reach its container."""
    if sandbox.status == Status.UNREACHABLE:
        raise errors.SandboxUnreachable(details={"status": sandbox.status})


def of_container(container) -> str:
    """The status that matches a container's engine state (None: the container is gone)."""
    if container is None:
        return Status.ERROR
    if container.status in ("running", "restarting"):
        return Status.RUNNING
    if container.status == "paused":
        return Status.PAUSED
    return Status.STOPPED
