"""Reads for the metrics scrape (apps/monitoring/collectors.py): the platform's state as the
database has it now, across every organization (the exporter is an operator's view, never a
customer's; GET /metrics is guarded by apps/monitoring/exporter.py)."""

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery

from apps.billing.models import MeterSample
from apps.sandboxes.models import PooledContainer, Sandbox, Status, WarmPool

# States whose sandboxes the meter samples, and whose usage the scrape reports.
METERED = (Status.RUNNING, Status.PAUSED, Status.STOPPED)


def sandbox_counts() -> dict[tuple[str, str], int]:
    """{(state, template): number of sandboxes} for every state but destroyed (destroyed rows
    are history: they only grow)."""
    rows = (
        Sandbox.objects.exclude(status=Status.DESTROYED)
        .values_list("status", "template__name")
        .annotate(count=Count("id"))
        .order_by()
    )
    return {(status, template): count for status, template, count in rows}


def pool_ready() -> dict[str, int]:
    """{template: containers ready in its warm pools that should hold some} (0 for one with none):
    the pools /status counts (on, enabled, a target above 0), so VibeBoxPoolEmpty and the status
    page agree; none while pools are off."""
    if not settings.VIBEBOX_POOL_ENABLED:
        return {}
    wanted = WarmPool.objects.filter(enabled=True, target_size__gt=0)
    counts = dict.fromkeys(wanted.values_list("template__name", flat=True), 0)
    rows = (
        PooledContainer.objects.filter(status=PooledContainer.Status.READY, pool__enabled=True, pool__target_size__gt=0)
        .values_list("pool__template__name")
        .annotate(count=Count("id"))
        .order_by()
    )
    for template, count in rows:
        counts[template] = count
    return counts


def sandbox_usage() -> list[tuple[str, str, int, int]]:
    """[(sandbox id, template, memory bytes, workspace bytes)] of every running, paused and stopped
    sandbox, from its latest meter sample (0 when it has none yet or its workspace was never
    measured)."""
    latest = MeterSample.objects.filter(sandbox=OuterRef("pk")).order_by("-taken_at")
    rows = (
        Sandbox.objects.filter(status__in=METERED)
        .annotate(
            sampled_memory=Subquery(latest.values("memory_bytes")[:1]),
            sampled_workspace=Subquery(latest.filter(workspace_bytes__isnull=False).values("workspace_bytes")[:1]),
        )
        .values_list("id", "template__name", "sampled_memory", "sampled_workspace")
        .order_by("id")
    )
    return [(pk, template, memory or 0, workspace or 0) for pk, template, memory, workspace in rows]


def metered_count() -> int:
    """How many sandboxes the meter samples now (running, paused, stopped)."""
    return Sandbox.objects.filter(status__in=METERED).count()
