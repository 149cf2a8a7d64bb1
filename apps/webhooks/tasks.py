"""The webhooks' Celery tasks: one endpoint's sender, queued when its events commit, and the
beat pass that queues every endpoint with a due delivery (retries, and what a dead worker or
broker left)."""

from celery import shared_task

from . import delivery


@shared_task(ignore_result=True)
def deliver_webhook(webhook_id: str) -> int:
    """Sends one endpoint's due deliveries in order (delivery.deliver_webhook)."""
    return delivery.deliver_webhook(webhook_id)


@shared_task(ignore_result=True)
def deliver_due_webhooks() -> int:
    """Beat: queues the sender of every endpoint with a due delivery that no sender holds."""
    ids = delivery.due_webhook_ids()
    for webhook_id in ids:
        deliver_webhook.delay(webhook_id)
    return len(ids)


@shared_task(ignore_result=True)
def prune_webhook_deliveries() -> int:
    """Beat: removes finished deliveries older than VIBEBOX_WEBHOOK_RETENTION."""
    return delivery.prune()
