"""The hourly rollup: UsageRecord rows (org x sandbox x UTC hour) recomputed from the meter's
samples alone, plus executions (execution seconds), snapshots (storage) and the model gateway's
requests (tokens and cost).

Between two consecutive samples of a sandbox (the span is the earlier one's state):
- CPU and network: the counters' difference; when the later sample is of another boot, or a
  counter went down (a restart VibeBox did not make), the later value itself (a boot starts at 0).
  The first sample of a sandbox is its baseline (what a pooled container used before it was
  claimed is not the sandbox's).
- memory (GiB-seconds): the trapezoid of the resident memory at both ends, while running or
  paused (a span ending in a stopped sample keeps the earlier value);
- workspace (GiB-seconds): the earlier sample's size, in every state but destroyed;
- running, paused and stopped seconds: the span's length.
A span crossing an hour boundary is split in proportion to time (the memory's line integrated
piecewise); byte counts are split with cumulative rounding, so the hours add up exactly.

Only complete hours are written (`live_usage` computes the rest on demand), and each sandbox-hour
is written in its own transaction as a whole recomputation (update_or_create, never an
increment): re-running a window changes nothing, and a worker killed in the middle leaves every
hour either as before or recomputed. Hours whose samples may have been pruned
(VIBEBOX_METER_SAMPLES_DAYS) are never recomputed.
"""

import itertools
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.agents.models import ModelUsage
from apps.sandboxes.models import Execution, Sandbox, Snapshot, Status

from .models import MeterSample, UsageRecord

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
GIB = Decimal(1 << 30)
NS = Decimal(10**9)
US = Decimal(10**6)
Q6 = Decimal("0.000001")

STATE_FIELDS = {Status.RUNNING: "running_seconds", Status.PAUSED: "paused_seconds", Status.STOPPED: "stopped_seconds"}
HELD = {Status.RUNNING, Status.PAUSED}  # memory is held
STORED = {Status.RUNNING, Status.PAUSED, Status.STOPPED}  # the workspace volume exists

DECIMAL_FIELDS = (
    "cpu_seconds",
    "memory_gib_seconds",
    "workspace_gib_seconds",
    "snapshot_gib_seconds",
    "execution_seconds",
    "running_seconds",
    "paused_seconds",
    "stopped_seconds",
    "model_cost_usd",
)
INT_FIELDS = ("net_in_bytes", "net_out_bytes", "model_input_tokens", "model_output_tokens")
FIELDS = DECIMAL_FIELDS + INT_FIELDS


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _us(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds


def _empty() -> dict:
    return {**dict.fromkeys(DECIMAL_FIELDS, Decimal(0)), **dict.fromkeys(INT_FIELDS, 0)}


def _pieces(t0: datetime, t1: datetime):
    """(hour, piece start, piece end) of the span [t0, t1) split at hour boundaries."""
    hour = floor_hour(t0)
    while hour < t1:
        start, end = max(t0, hour), min(t1, hour + HOUR)
        if end > start:
            yield hour, start, end
        hour += HOUR


def _delta(before: int, after: int, new_boot: bool) -> int:
    return after if new_boot or after < before else after - before


def _add_span(usage: dict, a: MeterSample, b: MeterSample, hours: tuple[datetime, datetime]) -> None:
    """Adds the span between consecutive samples `a` and `b` to usage[hour] for the hours in
    [hours[0], hours[1])."""
    t0, t1 = a.taken_at, b.taken_at
    total = _us(t1 - t0)
    if total <= 0:
        return
    new_boot = a.boot != b.boot
    cpu = _delta(a.cpu_ns, b.cpu_ns, new_boot) if b.state in HELD else 0
    rx = _delta(a.net_rx_bytes, b.net_rx_bytes, new_boot) if b.state in HELD else 0
    tx = _delta(a.net_tx_bytes, b.net_tx_bytes, new_boot) if b.state in HELD else 0
    held = a.state in HELD
    m0 = Decimal(a.memory_bytes if held else 0)
    m1 = Decimal(b.memory_bytes) if held and b.state in HELD else m0
    workspace = Decimal(a.workspace_bytes or 0) if a.state in STORED else Decimal(0)
    state_field = STATE_FIELDS.get(a.state)
    for hour, start, end in _pieces(t0, t1):
        if not hours[0] <= hour < hours[1]:
            continue
        u0, u1 = _us(start - t0), _us(end - t0)
        seconds = Decimal(u1 - u0) / US
        row = usage[hour]
        if state_field:
            row[state_field] += seconds
        row["cpu_seconds"] += Decimal(cpu) * (u1 - u0) / total / NS
        # Cumulative rounding: the pieces of an integer count add up to it exactly.
        row["net_in_bytes"] += (rx * u1 + total // 2) // total - (rx * u0 + total // 2) // total
        row["net_out_bytes"] += (tx * u1 + total // 2) // total - (tx * u0 + total // 2) // total
        if held:
            at_start = m0 + (m1 - m0) * u0 / total
            at_end = m0 + (m1 - m0) * u1 / total
            row["memory_gib_seconds"] += (at_start + at_end) / 2 * seconds / GIB
        row["workspace_gib_seconds"] += workspace * seconds / GIB


def amounts(samples: list[MeterSample]) -> dict:
    """What the spans between consecutive `samples` (of one sandbox, in time order) add up to,
    all hours together: the meter's part of a UsageRecord's amounts."""
    usage = defaultdict(_empty)
    everything = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    for a, b in itertools.pairwise(samples):
        _add_span(usage, a, b, everything)
    total = _empty()
    for row in usage.values():
        for field, value in row.items():
            total[field] += value
    return _quantized(total)


def _samples(sandbox_id: str, start: datetime, end: datetime) -> list[MeterSample]:
    """The sandbox's samples in [start, end), with the one before and the one after."""
    rows = MeterSample.objects.filter(sandbox_id=sandbox_id)
    inside = list(rows.filter(taken_at__gte=start, taken_at__lt=end).order_by("taken_at", "pk"))
    before = rows.filter(taken_at__lt=start).order_by("-taken_at", "-pk").first()
    after = rows.filter(taken_at__gte=end).order_by("taken_at", "pk").first()
    return [*([before] if before else []), *inside, *([after] if after else [])]


def compute(sandbox_id: str, start: datetime, end: datetime, *, now: datetime | None = None) -> dict:
    """{hour: amounts} of one sandbox for the hours in [floor_hour(start), end) (amounts of a
    partial hour: up to `end`), not written."""
    now = now or timezone.now()
    first = floor_hour(start)
    usage = defaultdict(_empty)
    samples = _samples(sandbox_id, first, end)
    for a, b in itertools.pairwise(samples):
        _add_span(usage, a, b, (first, end))
    hours = []
    hour = first
    while hour < end:
        hours.append(hour)
        hour += HOUR
    if not hours:
        return {}
    window_end = min(end, hours[-1] + HOUR)

    executions = Execution.objects.filter(sandbox_id=sandbox_id, started_at__lt=window_end).filter(
        Q(finished_at__isnull=True) | Q(finished_at__gt=first)
    )
    for execution in executions.only("started_at", "finished_at", "duration_ms"):
        stop = execution.finished_at or (
            execution.started_at + timedelta(milliseconds=execution.duration_ms)
            if execution.duration_ms is not None
            else now
        )
        for hour, lo, hi in _pieces(max(execution.started_at, first), min(stop, end)):
            usage[hour]["execution_seconds"] += Decimal(_us(hi - lo)) / US

    for snapshot in Snapshot.objects.filter(sandbox_id=sandbox_id, created_at__lt=window_end):
        size = Decimal(snapshot.size)
        for hour, lo, hi in _pieces(max(snapshot.created_at, first), min(now, end)):
            usage[hour]["snapshot_gib_seconds"] += size * _us(hi - lo) / US / GIB

    requests = ModelUsage.objects.filter(sandbox_id=sandbox_id, created_at__gte=first, created_at__lt=window_end)
    for request in requests.only(
        "created_at",
        "input_tokens",
        "output_tokens",
        "cache_creation_tokens",
        "cache_read_tokens",
        "cost_usd",
        "own_key",
    ):
        row = usage[floor_hour(request.created_at)]
        row["model_input_tokens"] += request.input_tokens + request.cache_creation_tokens + request.cache_read_tokens
        row["model_output_tokens"] += request.output_tokens
        if not request.own_key:  # the caller's own Anthropic key paid for it
            row["model_cost_usd"] += request.cost_usd
    return {hour: _quantized(amounts) for hour, amounts in usage.items() if hour in set(hours)}


def _quantized(amounts: dict) -> dict:
    return {k: (v.quantize(Q6) if k in DECIMAL_FIELDS else v) for k, v in amounts.items()}


def _oldest_recomputable(now: datetime) -> datetime:
    """Samples before floor_hour(now - VIBEBOX_METER_SAMPLES_DAYS) may be pruned: the hour after
    it is the first whose spans are all still known."""
    return floor_hour(now - timedelta(days=settings.VIBEBOX_METER_SAMPLES_DAYS)) + HOUR


def _ids(rows) -> set[str]:
    return set(rows.values_list("sandbox_id", flat=True).distinct())


def _sandbox_ids(start: datetime, end: datetime) -> set[str]:
    """Sandboxes that may have used something in [start, end)."""
    ids = _ids(MeterSample.objects.filter(taken_at__gte=start, taken_at__lt=end))
    # A span across the whole window (no sample inside it) begins before it.
    ids |= _ids(MeterSample.objects.filter(taken_at__lt=start, taken_at__gte=start - timedelta(days=1)))
    running = Q(finished_at__isnull=True) | Q(finished_at__gt=start)
    ids |= _ids(Execution.objects.filter(running, started_at__lt=end))
    ids |= _ids(Snapshot.objects.filter(created_at__lt=end, sandbox__isnull=False))
    ids |= _ids(ModelUsage.objects.filter(created_at__gte=start, created_at__lt=end))
    return ids


def _write(sandbox: Sandbox, hour: datetime, amounts: dict) -> bool:
    """One sandbox-hour, whole, in its own transaction. An hour with no usage and no row stays
    without one."""
    with transaction.atomic():
        existing = UsageRecord.objects.select_for_update().filter(sandbox=sandbox, hour=hour).first()
        if existing is None:
            if not any(amounts.values()):
                return False
            try:
                # A savepoint: on PostgreSQL another rollup (the beat pass, an invoice's) may insert
                # this sandbox-hour between the select (no row to lock) and this insert, and a failed
                # insert would abort the whole transaction. SQLite serializes writers: never there.
                with transaction.atomic():
                    UsageRecord.objects.create(
                        sandbox=sandbox, org_id=sandbox.org_id, template=sandbox.template.name, hour=hour, **amounts
                    )
                return True
            except IntegrityError:
                existing = UsageRecord.objects.select_for_update().get(sandbox=sandbox, hour=hour)
        if all(getattr(existing, k) == v for k, v in amounts.items()):
            return False  # unchanged: not even updated_at moves
        for field, value in amounts.items():
            setattr(existing, field, value)
        existing.save()
        return True


def rollup(*, start: datetime, end: datetime, sandbox: Sandbox | None = None, now: datetime | None = None) -> dict:
    """Recomputes the UsageRecord rows of every complete hour touched by [start, end) (of one
    sandbox, or of every sandbox that used something then). Answers counts for the task's log."""
    now = now or timezone.now()
    first = max(floor_hour(start), _oldest_recomputable(now))
    last = min(floor_hour(end) + (HOUR if end > floor_hour(end) else timedelta(0)), floor_hour(now))  # complete hours
    if first >= last:
        return {"hours": 0, "written": 0}
    return _rollup(first, last, sandbox=sandbox, now=now)


def _rollup(first: datetime, last: datetime, *, sandbox: Sandbox | None, now: datetime) -> dict:
    ids = {sandbox.pk} if sandbox is not None else _sandbox_ids(first, last)
    sandboxes = Sandbox.objects.filter(pk__in=ids).select_related("template").order_by("pk")
    hours = written = 0
    for row in sandboxes:
        computed = compute(row.pk, first, last, now=now)
        hour = first
        while hour < last:
            amounts = computed.get(hour) or _quantized(_empty())
            hours += 1
            written += _write(row, hour, amounts)
            hour += HOUR
    return {"hours": hours, "written": written}


def live_usage(sandbox: Sandbox, *, now: datetime | None = None) -> dict:
    """The sandbox's usage not rolled up yet (the hours after its latest UsageRecord, the current
    one included, up to its latest sample), as a UsageRecord's amounts: costs add it to be live."""
    now = now or timezone.now()
    latest = UsageRecord.objects.filter(sandbox=sandbox).order_by("-hour").values_list("hour", flat=True).first()
    start = latest + HOUR if latest else None
    if start is None:
        start = (
            MeterSample.objects.filter(sandbox=sandbox).order_by("taken_at").values_list("taken_at", flat=True).first()
        )
    total = _empty()
    if start is None or start >= now:
        return _quantized(total)
    for amounts in compute(sandbox.pk, start, now, now=now).values():
        for field, value in amounts.items():
            total[field] += value
    return _quantized(total)


def prune(*, now: datetime | None = None) -> int:
    """Deletes samples older than VIBEBOX_METER_SAMPLES_DAYS, once their hours are rolled up (this
    rolls them up first: recomputing an hour already rolled up changes nothing)."""
    now = now or timezone.now()
    cutoff = floor_hour(now - timedelta(days=settings.VIBEBOX_METER_SAMPLES_DAYS))
    oldest = MeterSample.objects.filter(taken_at__lt=cutoff).order_by("taken_at").values_list("taken_at", flat=True)
    oldest = oldest.first()
    if oldest is None:
        return 0
    _rollup(floor_hour(oldest), cutoff + HOUR, sandbox=None, now=now)
    deleted, _ = MeterSample.objects.filter(taken_at__lt=cutoff).delete()
    return deleted
