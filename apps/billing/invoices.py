"""Invoices: closing an organization's month (once), their numbers, totals and reads.

A month is closed by `invoice_close(org=…, period_start=…)`: the cost engine's line items for the
month (apps/billing/costs.py) become InvoiceLines rounded to cents, the tax is applied, and the
Invoice gets the next number of its year (VB-YYYY-NNNNNN). Closing is idempotent (one invoice per
organization and period: a rerun returns the invoice already there and changes nothing) and the
numbers have no gaps and no duplicates however many closers run at once: the year's counter row
is locked and bumped in the very transaction that writes the invoice.

Money is rounded once, here (`cents`), half up; the subtotal is the sum of the rounded lines, so
the PDF's lines add up to what it says.
"""

import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.actors import Actor
from apps.orgs.models import Organization
from vibebox import exceptions as errors
from vibebox.celery import app as celery_app

from . import costs, plans, rollup, stripe_api
from .models import (
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    OrgBilling,
    PaymentState,
    PlanAssignment,
    UsageRecord,
)

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
NUMBER_PREFIX = "VB"


def cents(amount: Decimal) -> Decimal:
    """The one rounding of money: to cents, half up (0.005 → 0.01)."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def default_tax_rate() -> Decimal:
    """VIBEBOX_TAX_RATE as a fraction in [0, 1)."""
    raw = str(settings.VIBEBOX_TAX_RATE).strip() or "0"
    try:
        rate = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"VIBEBOX_TAX_RATE: not a number: {raw!r}") from None
    if not (Decimal(0) <= rate < Decimal(1)):
        raise ImproperlyConfigured(f"VIBEBOX_TAX_RATE is a fraction (0.19 for 19 %), got {raw!r}")
    return rate


def tax_rate_of(org: Organization) -> Decimal:
    """The organization's own rate (OrgBilling.tax_rate), else VIBEBOX_TAX_RATE."""
    own = OrgBilling.objects.filter(org=org).values_list("tax_rate", flat=True).first()
    return own if own is not None else default_tax_rate()


def number_format(year: int, sequence: int) -> str:
    return f"{NUMBER_PREFIX}-{year:04d}-{sequence:06d}"


def _next_number(year: int) -> str:
    """Takes the year's next number. Must run inside the transaction that writes the invoice: the
    counter row stays locked until it commits (PostgreSQL: the row lock; SQLite: IMMEDIATE
    transactions serialize writers), and a rollback gives the number back."""
    InvoiceCounter.objects.get_or_create(year=year)
    counter = InvoiceCounter.objects.select_for_update().get(year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return number_format(year, counter.last)


def previous_month(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The calendar month (UTC) before the one `now` is in."""
    start, _ = plans.month_bounds(now or timezone.now())
    return plans.month_bounds(start - dt.timedelta(seconds=1))


def invoice_close(*, org: Organization, period_start: dt.datetime) -> tuple[Invoice, bool]:
    """Closes the month starting at `period_start` for `org`: (the invoice, whether it was made
    now). A month already closed is returned as it is."""
    start, end = plans.month_bounds(period_start)
    existing = Invoice.objects.filter(org=org, period_start=start).first()
    if existing is not None:
        return existing, False
    items = costs.line_items(org, start, end)  # one currency (else costs raises MixedCurrencies)
    currency = items[0].currency if items else plans.plan_at(org, start).currency
    rate = tax_rate_of(org)
    lines = [
        InvoiceLine(
            position=position,
            description=item.description[:200],
            resource=item.resource or "",
            plan=str(getattr(item.plan, "slug", item.plan))[:40],
            quantity=item.quantity,
            unit=(item.unit or "")[:40],
            unit_price=item.unit_price,
            amount=cents(item.amount),
        )
        for position, item in enumerate(items, start=1)
    ]
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    tax = cents(subtotal * rate)
    try:
        with transaction.atomic():
            number = _next_number(start.year)
            # Re-checked under the counter's lock: a closer that ran meanwhile wrote it first.
            existing = Invoice.objects.filter(org=org, period_start=start).first()
            if existing is not None:
                transaction.set_rollback(True)
                return existing, False
            invoice = Invoice.objects.create(
                org=org,
                number=number,
                period_start=start,
                period_end=end,
                currency=currency,
                subtotal=subtotal,
                tax_rate=rate,
                tax=tax,
                total=subtotal + tax,
                # Nothing to pay is paid: it is never sent to the payment provider.
                status=InvoiceStatus.OPEN if subtotal + tax > 0 else InvoiceStatus.PAID,
                paid_at=None if subtotal + tax > 0 else timezone.now(),
            )
            for line in lines:
                line.invoice = invoice
            InvoiceLine.objects.bulk_create(lines)
            record(
                "invoice.closed",
                target=invoice,
                changes={
                    "number": invoice.number,
                    "period": f"{start:%Y-%m}",
                    "currency": currency,
                    "subtotal": str(subtotal),
                    "taxRate": str(rate),
                    "tax": str(tax),
                    "total": str(invoice.total),
                    "lines": len(lines),
                },
            )
            if invoice.status == InvoiceStatus.OPEN:
                _queue_push(invoice)
    except IntegrityError:
        # Another process's invoice for this month committed between our check and our insert.
        existing = Invoice.objects.filter(org=org, period_start=start).first()
        if existing is None:
            raise
        return existing, False
    return invoice, True


PUSH_TASK = "apps.billing.tasks.push_invoice"


def _queue_push(invoice: Invoice) -> None:
    """The push to Stripe (tasks.push_invoice), queued once the invoice commits."""
    if stripe_api.enabled() and settings.VIBEBOX_STRIPE_DISPATCH:
        transaction.on_commit(lambda: celery_app.send_task(PUSH_TASK, args=[invoice.pk]))


def orgs_to_close(start: dt.datetime, end: dt.datetime) -> QuerySet[Organization]:
    """Organizations with usage in [start, end) or a plan with a fee during it, whose month is not
    closed yet (so an hourly pass after the month is closed looks at no plan at all)."""
    open_orgs = Organization.objects.exclude(pk__in=Invoice.objects.filter(period_start=start).values("org_id"))
    with_usage = UsageRecord.objects.filter(hour__gte=start, hour__lt=end).values("org_id")
    ids = set(open_orgs.filter(pk__in=with_usage).values_list("pk", flat=True))
    maybe_fee = open_orgs.exclude(pk__in=ids)
    if plans.default_plan().monthly_fee <= 0:  # only an assigned plan can have a fee
        maybe_fee = maybe_fee.filter(pk__in=PlanAssignment.objects.filter(effective_from__lt=end).values("org_id"))
    for org in maybe_fee.iterator():
        if any(plan.monthly_fee > 0 for plan, _, _ in plans.segments(org, start, end)):
            ids.add(org.pk)
    return Organization.objects.filter(pk__in=ids).order_by("pk")


def close_due_invoices(*, now: dt.datetime | None = None) -> list[Invoice]:
    """The beat pass: closes last month for every organization that used something or pays a fee,
    once the month has been over VIBEBOX_INVOICE_CLOSE_DELAY (so its last hour is rolled up).
    Returns the invoices made now; an organization that fails is logged and left for the next pass."""
    now = now or timezone.now()
    start, end = previous_month(now)
    if now < end + dt.timedelta(seconds=settings.VIBEBOX_INVOICE_CLOSE_DELAY):
        return []
    # The month's hours recomputed first: a worker outage longer than the beat's rollup window
    # would otherwise leave hours out of the invoice (a rerun changes nothing).
    rollup.rollup(start=start, end=end, now=now)
    made = []
    for org in orgs_to_close(start, end):
        try:
            invoice, created = invoice_close(org=org, period_start=start)
        except Exception:
            logger.exception("Could not close %s for %s", f"{start:%Y-%m}", org.slug)
            continue
        if created:
            made.append(invoice)
    return made


VOIDABLE = (InvoiceStatus.OPEN, InvoiceStatus.FAILED)


def invoice_void(*, invoice: Invoice) -> bool:
    """An operator cancels an unpaid invoice (the admin's "void" action): open or failed becomes
    void, audited `invoice.voided`; a paid or void one is left as it is (answers False). Its
    number stays taken (numbers have no gaps); nothing is sent to Stripe (void it there too). With no
    failed invoice left, a past-due or frozen account is back to ok."""
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status not in VOIDABLE:
            return False
        before = locked.status
        locked.status = InvoiceStatus.VOID
        locked.save(update_fields=["status"])
        record("invoice.voided", target=locked, changes={"number": locked.number, "status": [before, "void"]})
        failed_left = Invoice.objects.filter(org_id=locked.org_id, status=InvoiceStatus.FAILED).exists()
        overdue = (PaymentState.PAST_DUE, PaymentState.FROZEN)
        account = OrgBilling.objects.filter(org_id=locked.org_id, payment_state__in=overdue).first()
        if account is not None and not failed_left:  # the failed invoice that made it overdue is gone
            OrgBilling.objects.filter(pk=account.pk).update(payment_state=PaymentState.OK, payment_failed_at=None)
            changes = {"from": account.payment_state, "to": PaymentState.OK, "voided": locked.number}
            record("billing.payment_state_changed", target=account, org_id=locked.org_id, changes=changes)
    invoice.status = InvoiceStatus.VOID
    return True


# ---- Reads: the actor's organization only (another's invoice is a 404), with billing.read ----


def invoice_list(*, actor: Actor, status: str | None = None) -> QuerySet[Invoice]:
    actor.require("billing.read")
    invoices = Invoice.objects.filter(org=actor.org)
    if status:
        invoices = invoices.filter(status=status)
    return invoices.order_by("-period_start")


def invoice_get(*, actor: Actor, id: str) -> Invoice:
    invoice = Invoice.objects.filter(pk=id, org=actor.org).select_related("org").first()
    if invoice is None:
        raise errors.InvoiceNotFound(details={"invoice": id[:64]})
    actor.require("billing.read")
    return invoice
