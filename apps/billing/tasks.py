"""The billing app's Celery tasks (beat entries in vibebox/settings.py)."""

from celery import shared_task

from . import quotas

# ---- quotas (apps/billing/quotas.py) ----


@shared_task(ignore_result=True)
def check_quotas() -> dict:
    """Beat, every VIBEBOX_METER_INTERVAL: every organization's thresholds (Notice, webhook, email)
    and budget (used up: its running sandboxes paused)."""
    return quotas.check_all()


# ---- end of quotas ----
