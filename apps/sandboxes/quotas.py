"""Per-owner quotas (the operator's VIBEBOX_MAX_*_PER_OWNER settings): live sandboxes and their
CPU, memory and disk; snapshots and their bytes. The organization's plan quotas and budget are the
billing app's (apps/billing/quotas.py), asked through signals.work_requested sent in the same
places (`request_work`).

Checked in services against the database, inside a transaction that holds the owner's row lock
(select_for_update on PostgreSQL; SQLite's IMMEDIATE transactions serialise every writer), so
two concurrent creates cannot both slip under a limit. A limit of 0 (or unset) is no limit.
Warm-pool containers belong to nobody until a create takes one: then its sandbox row counts.
"""

from django.conf import settings
from django.db.models import Count, Sum

from apps.orgs.models import Organization
from vibebox import exceptions as errors
from vibebox.units import format_size

from . import signals, states
from .models import Sandbox, Snapshot

_SIZES = {"memory", "disk", "snapshot_bytes"}


def _show(resource: str, value) -> str:
    return format_size(value) if resource in _SIZES and value is not None else f"{value:g}"


def check(resource: str, limit, used, requested) -> None:
    """402 quota_exceeded when `requested` more (None: not known yet, so only `used`) would go
    past `limit`. `details.quota` names it; `details.resource` is the same name, kept for clients
    of the days this was a 403 (one release)."""
    if not limit:
        return
    fits = used < limit if requested is None else round(used + requested, 6) <= limit  # (CPUs are floats)
    if fits:
        return
    asked = f", {_show(resource, requested)} more asked for" if requested is not None else ""
    raise errors.QuotaExceeded(
        f"Quota exceeded for {resource}: {_show(resource, used)} of {_show(resource, limit)} in use{asked}.",
        details={"quota": resource, "resource": resource, "limit": limit, "used": used, "requested": requested},
    )


def check_sandbox(owner, *, cpu: float, memory: int, disk: int | None) -> None:
    """A new sandbox of `owner` fits (call with the owner's row locked)."""
    totals = Sandbox.objects.filter(owner=owner, status__in=states.ALIVE).aggregate(
        count=Count("pk"), cpu=Sum("cpu"), memory=Sum("memory"), disk=Sum("disk")
    )
    check("sandboxes", settings.VIBEBOX_MAX_SANDBOXES_PER_OWNER, totals["count"], 1)
    check("cpu", settings.VIBEBOX_MAX_CPU_PER_OWNER, round(totals["cpu"] or 0, 4), cpu)
    check("memory", settings.VIBEBOX_MAX_MEMORY_PER_OWNER, totals["memory"] or 0, memory)
    if disk:  # disk limits are on: sandboxes without a disk size count for nothing
        check("disk", settings.VIBEBOX_MAX_DISK_PER_OWNER, totals["disk"] or 0, disk)


def check_snapshot(owner, *, size: int | None = None, exclude=None) -> None:
    """Another snapshot of `owner` fits; `size`: its bytes once taken (`exclude`: itself)."""
    existing = Snapshot.objects.filter(owner=owner)
    if exclude is not None:
        existing = existing.exclude(pk=exclude.pk)
    totals = existing.aggregate(count=Count("pk"), image=Sum("image_bytes"), workspace=Sum("workspace_bytes"))
    if size is None:
        check("snapshots", settings.VIBEBOX_MAX_SNAPSHOTS_PER_OWNER, totals["count"], 1)
    used = (totals["image"] or 0) + (totals["workspace"] or 0)
    check("snapshot_bytes", settings.VIBEBOX_MAX_SNAPSHOT_BYTES_PER_OWNER, used, size)


def lock_org(org_id) -> None:
    """Serialises the organization's work requests (creates, starts, resumes, snapshots) for the
    rest of the transaction, so two cannot both slip under an organization's quota."""
    if org_id is not None:
        Organization.objects.select_for_update().filter(pk=org_id).values_list("pk", flat=True).first()


def request_work(
    *,
    org_id,
    action: str,
    sandbox=None,
    user=None,
    running: int = 0,
    cpu: float = 0,
    memory: int = 0,
    disk: int = 0,
    snapshots: int = 0,
) -> None:
    """Asks the apps above (billing) whether the organization may do `action` (signals.work_requested):
    a receiver refuses by raising (402 quota_exceeded). `running`, `cpu`, `memory`: what it adds to
    the organization's running sandboxes; `disk`: to its storage; `snapshots`: to its snapshots.
    Called where the work is decided, inside the transaction holding lock_org for the actions that
    add running sandboxes, storage or snapshots."""
    if org_id is None:
        return
    signals.work_requested.send(
        sender=Sandbox,
        org_id=org_id,
        action=action,
        sandbox=sandbox,
        user=user,
        running=running,
        cpu=float(cpu or 0),
        memory=int(memory or 0),
        disk=int(disk or 0),
        snapshots=snapshots,
    )
