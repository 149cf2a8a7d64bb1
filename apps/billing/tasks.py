"""Billing's Celery tasks (CELERY_BEAT_SCHEDULE in vibebox/settings.py)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from vibebox import exceptions as errors

from . import invoices, metering, payments, quotas, rollup
from .models import Invoice, InvoiceStatus

# ---- Invoices and payment (invoices.py, payments.py) ----

PUSH_RETRY_DELAYS = (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)


@shared_task(ignore_result=True)
def close_invoices() -> int:
    """Beat: closes last month for every organization with usage or a fee (once), then queues
    the push to Stripe of the open invoices that never reached it."""
    made = invoices.close_due_invoices()
    if payments.enabled() and settings.VIBEBOX_STRIPE_DISPATCH:
        made_ids = {invoice.pk for invoice in made}  # queued by their close already
        unsent = Invoice.objects.filter(status=InvoiceStatus.OPEN, stripe_invoice_id="", total__gt=0)
        for invoice_id in unsent.exclude(pk__in=made_ids).values_list("pk", flat=True):
            push_invoice.delay(invoice_id)
    return len(made)


@shared_task(bind=True, ignore_result=True, max_retries=len(PUSH_RETRY_DELAYS))
def push_invoice(self, invoice_id: str) -> str:
    """Sends one closed invoice to Stripe (payments.invoice_push); Stripe's transient failures are
    retried later (PUSH_RETRY_DELAYS), each call with the same idempotency keys."""
    invoice = Invoice.objects.filter(pk=invoice_id).select_related("org").first()
    if invoice is None:
        return ""
    try:
        return payments.invoice_push(invoice=invoice)
    except errors.PaymentProviderUnavailable as exc:
        if not exc.details.get("transient") or self.request.retries >= len(PUSH_RETRY_DELAYS):
            raise
        raise self.retry(exc=exc, countdown=PUSH_RETRY_DELAYS[self.request.retries]) from exc


@shared_task(ignore_result=True)
def dunning() -> int:
    """Beat: freezes the accounts still past due after VIBEBOX_DUNNING_GRACE_DAYS."""
    return len(payments.dunning_pass())


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


# ---- quotas (apps/billing/quotas.py) ----


@shared_task(ignore_result=True)
def check_quotas() -> dict:
    """Beat, every VIBEBOX_METER_INTERVAL: every organization's thresholds (Notice, webhook, email)
    and budget (used up: its running sandboxes paused)."""
    return quotas.check_all()
