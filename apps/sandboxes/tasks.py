from celery import shared_task

from .reconcile import sandbox_reconcile


@shared_task(ignore_result=True)
def reconcile_sandboxes() -> dict:
    """Celery beat runs this every VIBEBOX_RECONCILE_INTERVAL (default a minute)."""
    return sandbox_reconcile().as_dict()
