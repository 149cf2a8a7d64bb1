"""The keys app's periodic passes (CELERY_BEAT_SCHEDULE in vibebox/settings.py)."""

from celery import shared_task

from . import usage


@shared_task(ignore_result=True)
def flush_key_usage() -> int:
    """Moves the request counts kept in Redis into the database (usage.py)."""
    return usage.flush()
