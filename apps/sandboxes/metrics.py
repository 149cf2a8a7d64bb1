"""A sandbox's resource use now: CPU, memory, processes (from the engine) and the workspace's size;
and the cumulative counters billing's meter samples (`sandbox_meter`, `workspace_size`).

Reading metrics is not use: it does not postpone an idle sandbox's auto-pause.
"""

from django.utils import timezone

from vibebox import exceptions as errors

from . import states
from .models import Sandbox, Status
from .runtime import MeterReading, driver_for
from .services.exec import run_internal

WORKSPACE = "/workspace"


def _workspace_bytes(sandbox: Sandbox) -> int | None:
    """`du` in the sandbox, as its user (what it cannot read is not counted); None if it fails."""
    result = run_internal(sandbox, ("/usr/bin/du", "-sxb", WORKSPACE), timeout=30, output_limit=4096)
    first = result.stdout.decode(errors="replace").split("\t", 1)[0].strip()
    return int(first) if first.isdigit() and not result.timed_out else None


def workspace_size(*, sandbox: Sandbox) -> int | None:
    """The workspace's size in bytes (`du` in the running sandbox, up to 30 s); None if it fails."""
    return _workspace_bytes(sandbox)


def sandbox_meter(*, sandbox: Sandbox) -> tuple[str, MeterReading] | None:
    """The container's cumulative counters (one one-shot read of the engine's stats) and the boot
    they count from: the start the row records (`started_at`, written at each start VibeBox makes;
    the stats API does not carry the container's StartedAt, and an inspect would be a second
    engine call). None when the container is gone, or when it was (re)started during the read (the
    counters could be of either boot; the start's own sample follows)."""
    boot = sandbox.started_at
    try:
        reading = driver_for(sandbox).meter(sandbox.container_name)
    except errors.SandboxNotFound:
        return None
    if Sandbox.objects.filter(pk=sandbox.pk).values_list("started_at", flat=True).first() != boot:
        return None
    return (boot.isoformat() if boot else ""), reading


def sandbox_metrics(*, sandbox: Sandbox) -> dict:
    """What GET /sandboxes/{id}/metrics answers (running or paused sandboxes), as
    SandboxMetricsSerializer renders it."""
    states.require_reachable(sandbox)
    if sandbox.status not in (Status.RUNNING, Status.PAUSED):
        raise errors.SandboxNotRunning(
            f"The sandbox is {sandbox.status}; metrics are measured while it runs.", details={"status": sandbox.status}
        )
    stats = driver_for(sandbox).stats(sandbox.container_name)
    # A paused sandbox's processes are frozen: nothing can run in it to measure the workspace.
    workspace = _workspace_bytes(sandbox) if sandbox.status == Status.RUNNING else None
    limit = stats.memory_limit or sandbox.memory
    cpu_percent = stats.cpu_percent
    return {
        "sandbox_id": sandbox.id,
        "status": sandbox.status,
        "timestamp": timezone.now(),
        "cpu": {
            "percent": cpu_percent,
            "limit": sandbox.cpu,
            "percent_of_limit": round(cpu_percent / sandbox.cpu, 2)
            if cpu_percent is not None and sandbox.cpu
            else None,
            "online_cpus": stats.online_cpus,
        },
        "memory": {
            "usage": stats.memory_usage,
            "limit": limit,
            "percent": round(stats.memory_usage / limit * 100, 2) if limit else None,
        },
        "disk": {"workspace": workspace, "limit": sandbox.disk},
        "pids": {"current": stats.pids, "limit": stats.pids_limit},
    }
