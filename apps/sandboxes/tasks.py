from celery import shared_task

from .pools import pools_maintain
from .reconcile import sandbox_reconcile


@shared_task(ignore_result=True)
def reconcile_sandboxes() -> dict:
    """Celery beat runs this every VIBEBOX_RECONCILE_INTERVAL (default a minute)."""
    return sandbox_reconcile().as_dict()


@shared_task(ignore_result=True)
def maintain_pools() -> dict:
    """Celery beat runs this every VIBEBOX_POOL_INTERVAL: health checks, then refills warm pools."""
    return pools_maintain()
