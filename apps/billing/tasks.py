from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import metering, rollup

# ---- meter ----


@shared_task
def sample_meters() -> dict[str, int]:
    """Every VIBEBOX_METER_INTERVAL: a sample of every running and paused sandbox (metering.py)."""
    return metering.sample_all()


@shared_task
def rollup_usage() -> dict[str, int]:
    """Every VIBEBOX_METER_ROLLUP_INTERVAL: the hourly UsageRecords of the last
    VIBEBOX_METER_ROLLUP_WINDOW recomputed (a re-run changes nothing)."""
    now = timezone.now()
    return rollup.rollup(start=now - timedelta(seconds=settings.VIBEBOX_METER_ROLLUP_WINDOW), end=now, now=now)


@shared_task
def prune_meter_samples() -> int:
    """Daily: samples older than VIBEBOX_METER_SAMPLES_DAYS, once rolled up, are deleted."""
    return rollup.prune()
