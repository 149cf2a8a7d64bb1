"""Service level objectives (settings.VIBEBOX_SLOS) computed from the platform's own metrics.

The SLIs are the counters and histograms of vibebox/metrics.py. Those live in each process and
start again from zero when it restarts, and a 30-day window needs history, so beat runs
`record_sli_samples` every minute (VIBEBOX_SLO_SAMPLE_INTERVAL): it reads the cumulative values of
every process (prometheus_client's multiprocess files in PROMETHEUS_MULTIPROC_DIR, the ones GET
/metrics serves) and stores, per SLO, the good and total events counted since the previous sample
(a counter that went down was reset by a restart: its new value is the delta, as PromQL's rate()
treats it). `slo_report` sums those per window, plus what the counters hold beyond the last sample.

Each SLI is also written as PromQL over the same series (`sli_query`, `error_ratio_query`): the
deploy/monitoring recording rules `slo:sli_error:ratio_rate<window>{slo="<id>"}` and burn-rate
alerts use the same expressions, so Prometheus and this page agree.
"""

import datetime as dt
import logging
import math
import os
import re
from dataclasses import dataclass, field

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from vibebox.units import parse_duration

from .models import SliSample

logger = logging.getLogger(__name__)

# Burn-rate windows (the SRE workbook's long windows; deploy/monitoring pairs each with a short one:
# 1h/5m at 14.4x, 6h/30m at 6x, 1d/2h at 3x, 3d/6h at 1x).
BURN_WINDOWS = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "3d": 3 * 86400}


@dataclass(frozen=True)
class Slo:
    name: str
    description: str
    objective: float
    window: str  # as configured ("30d")
    window_seconds: float
    kind: str  # ratio | latency
    metric: str
    total: dict = field(default_factory=dict)  # ratio: the series counted in all
    good: dict | None = None  # ratio: the good ones among them...
    bad: dict | None = None  # ...or the bad ones
    labels: dict = field(default_factory=dict)  # latency: the histogram series counted
    threshold: float = 0.0  # latency: the bucket bound (seconds)


def slos() -> list[Slo]:
    """The configured SLOs (settings.py checked their specs at start)."""
    found = []
    for name, spec in settings.VIBEBOX_SLOS.items():
        sli = spec["sli"]
        found.append(
            Slo(
                name=name,
                description=spec.get("description", ""),
                objective=float(spec["objective"]),
                window=str(spec.get("window", "30d")),
                window_seconds=parse_duration(spec.get("window", "30d")),
                kind=sli["kind"],
                metric=sli["metric"],
                total=dict(sli.get("total", {})),
                good=dict(sli["good"]) if "good" in sli else None,
                bad=dict(sli["bad"]) if "bad" in sli else None,
                labels=dict(sli.get("labels", {})),
                threshold=float(sli.get("threshold", 0)),
            )
        )
    return found


# --- PromQL ---------------------------------------------------------------------------------------


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _operator(pattern: str) -> str:
    """= for a literal value, =~ for a pattern (PromQL anchors both, as _matches does)."""
    return "=" if re.escape(pattern) == pattern else "=~"


def _selector(metric: str, matchers: dict, negated: dict | None = None, extra: str = "") -> str:
    parts = [f"{label}{_operator(value)}{_quoted(value)}" for label, value in matchers.items()]
    parts += [f"{label}!~{_quoted(value)}" for label, value in (negated or {}).items()]
    if extra:
        parts.append(extra)
    return f"{metric}{{{','.join(parts)}}}" if parts else metric


def _good_and_total_selectors(slo: Slo) -> tuple[str, str]:
    if slo.kind == "latency":
        le = f"le={_quoted(floatToGoString(slo.threshold))}"
        return (
            _selector(f"{slo.metric}_bucket", slo.labels, extra=le),
            _selector(f"{slo.metric}_count", slo.labels),
        )
    return _selector(slo.metric, {**slo.total, **(slo.good or {})}), _selector(slo.metric, slo.total)


def error_ratio_query(slo: Slo, window: str) -> str:
    """The fraction of bad events over `window`: what deploy/monitoring's recording rule
    `slo:sli_error:ratio_rate<window>{slo="<id>"}` records (a ratio named by its bad series: 0, not
    nothing, while there are none)."""
    if slo.kind == "ratio" and slo.bad is not None:
        bad = _selector(slo.metric, {**slo.total, **slo.bad})  # a label in both: bad's pattern
        total = _selector(slo.metric, slo.total)
        return f"(sum(rate({bad}[{window}])) or vector(0)) / sum(rate({total}[{window}]))"
    good, total = _good_and_total_selectors(slo)
    return f"1 - (sum(rate({good}[{window}])) / sum(rate({total}[{window}])))"


def sli_query(slo: Slo, window: str | None = None) -> str:
    """The SLI in PromQL: the fraction of good events over `window` (default: the SLO's)."""
    window = window or slo.window
    if slo.kind == "ratio" and slo.bad is not None:
        return f"1 - ({error_ratio_query(slo, window)})"
    good, total = _good_and_total_selectors(slo)
    return f"sum(rate({good}[{window}])) / sum(rate({total}[{window}]))"


# --- reading the counters -------------------------------------------------------------------------


def _matches(labels: dict, matchers: dict) -> bool:
    return all(re.fullmatch(pattern, labels.get(label, "")) for label, pattern in matchers.items())


def _counted(slo: Slo, samples) -> tuple[float, float]:
    """(good, total) of one SLO from (sample name, labels, value) triples."""
    good = total = 0.0
    for name, labels, value in samples:
        if slo.kind == "latency":
            if not _matches(labels, slo.labels):
                continue
            if name == f"{slo.metric}_count":
                total += value
            elif name == f"{slo.metric}_bucket" and math.isclose(float(labels.get("le", "nan")), slo.threshold):
                good += value
        elif name == slo.metric and _matches(labels, slo.total):
            total += value
            if slo.good is not None and _matches(labels, slo.good):
                good += value
            if slo.bad is not None and not _matches(labels, {**slo.total, **slo.bad}):
                good += value
    return good, total


def multiprocess_dir(path: str | None = None) -> str | None:
    """The directory every process writes its metrics to (PROMETHEUS_MULTIPROC_DIR), if there is one."""
    path = path or os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return path if path and os.path.isdir(path) else None


def read_cumulative(path: str | None = None) -> dict[str, tuple[float, float]] | None:
    """Each SLO's cumulative (good, total) over every process's metrics; None without the
    multiprocess directory (one process's own counters would not be the platform's)."""
    directory = multiprocess_dir(path)
    if directory is None:
        return None
    samples = [
        (sample.name, sample.labels, sample.value)
        for family in MultiProcessCollector(None, path=directory).collect()
        for sample in family.samples
    ]
    return {slo.name: _counted(slo, samples) for slo in slos()}


def _delta(last: SliSample | None, good_now: float, total_now: float) -> tuple[int, int]:
    """Events since `last` was read; a counter below its last value was reset (a restart), so all of
    its value is new."""
    if last is None or good_now < last.good_cumulative or total_now < last.total_cumulative:
        good, total = good_now, total_now
    else:
        good, total = good_now - last.good_cumulative, total_now - last.total_cumulative
    total = max(0, round(total))
    return min(max(0, round(good)), total), total


def _cursor(slo: str) -> SliSample | None:
    """The newest sample the recorder wrote: where the next delta starts."""
    return SliSample.objects.filter(slo=slo, total_cumulative__isnull=False).order_by("-minute").first()


# --- writes ---------------------------------------------------------------------------------------


def sli_samples_record(*, path: str | None = None, now: dt.datetime | None = None) -> list[SliSample]:
    """Stores this minute's sample of every SLO (idempotent per minute: a second run in the same
    minute leaves its events to the next sample), and drops samples older than every window needs.
    Records nothing without the multiprocess directory."""
    readings = read_cumulative(path)
    if readings is None:
        logger.warning("SLI samples not recorded: PROMETHEUS_MULTIPROC_DIR is not set to a directory")
        return []
    now = now or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    recorded = []
    for slo in slos():
        good_now, total_now = readings[slo.name]
        last = _cursor(slo.name)
        if last is not None and last.minute >= minute:
            continue
        good, total = _delta(last, good_now, total_now)
        try:
            with transaction.atomic():
                recorded.append(
                    SliSample.objects.create(
                        slo=slo.name,
                        minute=minute,
                        good=good,
                        total=total,
                        good_cumulative=good_now,
                        total_cumulative=total_now,
                    )
                )
        except IntegrityError:  # another recorder took this minute
            continue
    sli_samples_prune(now=now)
    return recorded


def sli_sample_add(*, slo: str, minute: dt.datetime, good: int, total: int) -> SliSample:
    """Adds events to one minute of one SLO by hand (a backfill, or events counted elsewhere);
    the cumulative cursor of that minute is left as it was."""
    if not 0 <= good <= total:
        raise ValueError("0 <= good <= total")
    minute = minute.replace(second=0, microsecond=0)
    with transaction.atomic():
        sample, created = SliSample.objects.select_for_update().get_or_create(
            slo=slo, minute=minute, defaults={"good": good, "total": total}
        )
        if not created:
            SliSample.objects.filter(pk=sample.pk).update(good=sample.good + good, total=sample.total + total)
            sample.refresh_from_db()
    return sample


def sli_samples_prune(*, now: dt.datetime | None = None) -> int:
    """Drops samples older than the longest window (plus a day), but each SLO's newest one (the
    cursor the next delta starts from)."""
    configured = slos()
    longest = max([slo.window_seconds for slo in configured] + list(BURN_WINDOWS.values()))
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=longest + 86400)
    newest = [sample.pk for slo in configured if (sample := _cursor(slo.name)) is not None]
    deleted, _ = SliSample.objects.filter(minute__lt=cutoff).exclude(pk__in=newest).delete()
    return deleted


@shared_task(ignore_result=True)
def record_sli_samples() -> int:
    """Beat runs this every VIBEBOX_SLO_SAMPLE_INTERVAL (a minute)."""
    return len(sli_samples_record())


# --- reads ----------------------------------------------------------------------------------------


def _pending(path: str | None) -> dict[str, tuple[int, int]]:
    """Per SLO, the events counted since its newest sample (not yet recorded)."""
    readings = read_cumulative(path)
    if readings is None:
        return {}
    return {name: _delta(_cursor(name), *reading) for name, reading in readings.items()}


def _ratio(good: int, total: int) -> float | None:
    return good / total if total else None


def slo_report(*, now: dt.datetime | None = None, path: str | None = None) -> dict:
    """Every SLO's SLI over its window, error budget remaining and burn rates (GET
    /api/v1/status/slo, the staff part of /status)."""
    now = now or timezone.now()
    pending = _pending(path)
    report = []
    for slo in slos():
        windows = {"window": slo.window_seconds, **BURN_WINDOWS}
        sums = SliSample.objects.filter(slo=slo.name).aggregate(
            **{
                f"{kind}_{label}": Sum(kind, filter=Q(minute__gt=now - dt.timedelta(seconds=seconds)))
                for label, seconds in windows.items()
                for kind in ("good", "total")
            }
        )
        extra_good, extra_total = pending.get(slo.name, (0, 0))

        def counts(label, extra_good=extra_good, extra_total=extra_total, sums=sums):
            return (sums[f"good_{label}"] or 0) + extra_good, (sums[f"total_{label}"] or 0) + extra_total

        good, total = counts("window")
        sli = _ratio(good, total)
        allowed = 1 - slo.objective
        burn_rates = {}
        for label in BURN_WINDOWS:
            ratio = _ratio(*counts(label))
            burn_rates[label] = None if ratio is None else round((1 - ratio) / allowed, 4)
        report.append(
            {
                "name": slo.name,
                "description": slo.description,
                "objective": slo.objective,
                "window": slo.window,
                "sli": None if sli is None else round(sli, 6),
                "errorBudgetRemaining": 1.0 if sli is None else round(1 - (1 - sli) / allowed, 6),
                "burnRates": burn_rates,
                "events": {"good": good, "total": total},
                "query": sli_query(slo),
            }
        )
    return {"slos": report, "computedAt": now}
