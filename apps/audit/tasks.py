from celery import shared_task

from . import services


@shared_task
def prune_audit_log() -> dict[str, int]:
    """Daily: archives then removes entries older than VIBEBOX_AUDIT_RETENTION_DAYS."""
    return services.prune()
