"""Payment through Stripe (apps/billing/stripe_api.py is the wire): a customer per organization,
Checkout sessions that collect a payment method, invoices pushed when closed, the webhook's
events (paid, failed, a payment method added) and dunning.

Off unless VIBEBOX_STRIPE_SECRET_KEY is set. Dunning: a failed payment makes the account
`past_due` (payment_failed_at is when); still unpaid VIBEBOX_DUNNING_GRACE_DAYS later it becomes
`frozen` (apps/billing/quotas.py refuses new work then); an invoice paid makes it `ok` again once
no failed invoice is left.
"""

import datetime as dt
import logging
import smtplib
from decimal import ROUND_HALF_UP

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs import selectors as org_selectors
from apps.orgs.actors import Actor
from apps.orgs.branding import brand_for
from apps.orgs.models import Organization
from vibebox import exceptions as errors

from . import plans, services, stripe_api
from .invoices import cents
from .models import Invoice, InvoiceStatus, OrgBilling, PaymentState, StripeEvent

logger = logging.getLogger(__name__)

enabled = stripe_api.enabled


def _account(org: Organization) -> OrgBilling:
    return services.org_billing_get_or_create(org=org)


def billing_recipients(org: Organization) -> list[str]:
    """The emails of the members who manage billing (billing.manage), else the billing address."""
    to = [
        membership.user.email
        for membership in org_selectors.member_list(org=org)
        if membership.user.email
        and "billing.manage" in (org_selectors.member_permissions(user=membership.user, org=org) or ())
    ]
    email = OrgBilling.objects.filter(org=org).values_list("billing_email", flat=True).first()
    if email and email not in to:
        to.append(email)
    return to


def _tell(org: Organization, subject: str, body: str) -> None:
    to = billing_recipients(org)
    if not to:
        return
    try:
        brand = brand_for(org)
        send_mail(f"[{brand.name}] {subject}", body, brand.email_from, to)
    except (smtplib.SMTPException, OSError):  # the state and the audit log say it anyway
        logger.exception("Could not email %s: %s", org.slug, subject)


# ---- Customers and Checkout ----


def customer_ensure(*, org: Organization) -> str:
    """The organization's Stripe customer, made on first use (the idempotency key is the
    organization's id, so two first uses at once make one customer)."""
    account = _account(org)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    email = account.billing_email or next(iter(billing_recipients(org)), "")
    customer_id = stripe_api.customer_create(
        org_id=org.pk, name=org.name, email=email, key=f"vibebox-customer-{org.pk}"
    )
    with transaction.atomic():
        if OrgBilling.objects.filter(pk=account.pk, stripe_customer_id="").update(stripe_customer_id=customer_id):
            record("billing.customer_created", target=account, org_id=org.pk, changes={"customer": customer_id})
    account.refresh_from_db(fields=["stripe_customer_id"])
    return account.stripe_customer_id


def checkout_check(*, actor: Actor) -> None:
    """Who asks, and whether this server takes payments at all: checked before what a checkout's
    fields say (REST's and GraphQL's order)."""
    actor.require("billing.manage")
    if not enabled():
        raise errors.PaymentsNotConfigured()


def checkout_start_from(*, actor: Actor, data: dict, origin: str) -> dict:
    """A checkout from the body's validated fields (api.invoice_serializers.CheckoutSerializer):
    REST's and GraphQL's. The return URLs default to the billing page (VIBEBOX_PUBLIC_URL, else
    `origin`, the server as the caller reached it)."""
    page = f"{settings.VIBEBOX_PUBLIC_URL or origin.rstrip('/')}/billing/"
    return checkout_start(
        actor=actor,
        success_url=data.get("successUrl") or f"{page}?checkout=done",
        cancel_url=data.get("cancelUrl") or f"{page}?checkout=cancelled",
    )


def checkout_start(*, actor: Actor, success_url: str, cancel_url: str) -> dict:
    """A Stripe Checkout session (setup mode) where a billing manager gives a payment method."""
    actor.require("billing.manage")
    org = actor.org
    customer_id = customer_ensure(org=org)
    currency = plans.plan_at(org, timezone.now()).currency
    session_id, url = stripe_api.checkout_session_create(
        customer_id=customer_id,
        org_id=org.pk,
        currency=currency,
        success_url=success_url,
        cancel_url=cancel_url,
        key=f"vibebox-checkout-{org.pk}-{timezone.now():%Y%m%d%H%M%S%f}",
    )
    record(
        "billing.checkout_started",
        target=_account(org),
        org_id=org.pk,
        changes={"session": session_id, "customer": customer_id},
    )
    return {"id": session_id, "url": url}


# ---- Invoices pushed to Stripe ----


def invoice_push(*, invoice: Invoice) -> str:
    """Sends a closed invoice to Stripe: a draft invoice, one item per line (and the tax), then
    finalized, so Stripe charges the customer's default payment method. Safe to repeat: each call
    has an idempotency key made of our ids, and the draft's id is kept at once. Returns the Stripe
    invoice's id ("" when there is nothing to send)."""
    if not enabled() or invoice.total <= 0:
        return ""
    customer_id = customer_ensure(org=invoice.org)
    base = f"vibebox-invoice-{invoice.pk}"
    if not invoice.stripe_invoice_id:
        stripe_id = stripe_api.invoice_create(
            customer_id=customer_id,
            currency=invoice.currency,
            metadata={"vibebox_invoice": invoice.pk, "vibebox_number": invoice.number, "vibebox_org": invoice.org_id},
            description=f"{brand_for(invoice.org).name} {invoice.number} ({invoice.period_start:%Y-%m})",
            key=base,
        )
        Invoice.objects.filter(pk=invoice.pk, stripe_invoice_id="").update(stripe_invoice_id=stripe_id)
        invoice.refresh_from_db(fields=["stripe_invoice_id"])
    items = [(f"{base}-line-{line.position}", line.description, line.amount) for line in invoice.lines.all()]
    if invoice.tax:
        items.append((f"{base}-tax", f"Tax ({format((invoice.tax_rate * 100).normalize(), 'f')} %)", invoice.tax))
    for key, description, amount in items:
        if amount == 0:
            continue
        stripe_api.invoice_item_create(
            customer_id=customer_id,
            invoice_id=invoice.stripe_invoice_id,
            currency=invoice.currency,
            amount_cents=minor_units(amount, invoice.currency),
            description=description[:500],
            key=key,
        )
    status = stripe_api.invoice_finalize(invoice_id=invoice.stripe_invoice_id, key=f"{base}-finalize")
    record(
        "invoice.pushed",
        target=invoice,
        changes={"stripeInvoice": invoice.stripe_invoice_id, "items": len(items), "stripeStatus": status},
    )
    return invoice.stripe_invoice_id


# ---- The webhook ----


# Stripe's zero-decimal currencies: their amounts are sent in whole units, not hundredths.
ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)


def minor_units(amount, currency: str) -> int:
    """What Stripe's `amount` fields take: cents, or whole units in a zero-decimal currency."""
    if currency.upper() in ZERO_DECIMAL:
        return int(cents(amount).to_integral_value(rounding=ROUND_HALF_UP))
    return int(cents(amount) * 100)


def _invoice_of(stripe_invoice: dict) -> Invoice | None:
    """Our invoice that a Stripe invoice event is about: found by Stripe's id (or, before the id
    was kept, our metadata), and only when the event's customer is the organization's own: an
    invoice made by hand in Stripe's dashboard with copied metadata, or another deployment's on a
    shared account, changes nothing here."""
    metadata = stripe_invoice.get("metadata") or {}
    found = Invoice.objects.filter(stripe_invoice_id=stripe_invoice.get("id") or "-").select_related("org").first()
    if found is None and metadata.get("vibebox_invoice"):
        found = Invoice.objects.filter(pk=metadata["vibebox_invoice"]).select_related("org").first()
        if found is not None and found.stripe_invoice_id and found.stripe_invoice_id != stripe_invoice.get("id"):
            found = None  # ours went to Stripe under another id: this one is not it
    if found is not None:
        customer = OrgBilling.objects.filter(org_id=found.org_id).values_list("stripe_customer_id", flat=True).first()
        if not customer or stripe_invoice.get("customer") != customer:
            logger.warning("Stripe invoice %s is for another customer than %s's", stripe_invoice.get("id"), found)
            return None
    return found


def _invoice_paid(stripe_invoice: dict) -> None:
    invoice = _invoice_of(stripe_invoice)
    if invoice is None:
        logger.info("Stripe invoice %s is none of ours", stripe_invoice.get("id"))
        return
    now = timezone.now()
    changed = Invoice.objects.filter(pk=invoice.pk, status__in=[InvoiceStatus.OPEN, InvoiceStatus.FAILED]).update(
        status=InvoiceStatus.PAID, paid_at=now
    )
    if not changed:
        return
    record(
        "invoice.paid", target=invoice, changes={"number": invoice.number, "stripeInvoice": stripe_invoice.get("id")}
    )
    still_failed = Invoice.objects.filter(org=invoice.org, status=InvoiceStatus.FAILED).exists()
    if not still_failed:
        account = _account(invoice.org)
        if (
            OrgBilling.objects.filter(pk=account.pk)
            .exclude(payment_state=PaymentState.OK)
            .update(payment_state=PaymentState.OK, payment_failed_at=None)
        ):
            record(
                "billing.payment_state_changed",
                target=account,
                org_id=invoice.org_id,
                changes={"from": account.payment_state, "to": PaymentState.OK, "invoice": invoice.number},
            )


def _invoice_payment_failed(stripe_invoice: dict) -> None:
    invoice = _invoice_of(stripe_invoice)
    if invoice is None:
        logger.info("Stripe invoice %s is none of ours", stripe_invoice.get("id"))
        return
    now = timezone.now()
    if not Invoice.objects.filter(pk=invoice.pk, status=InvoiceStatus.OPEN).update(status=InvoiceStatus.FAILED):
        return  # failed already (a retry failed again), or paid meanwhile
    record(
        "invoice.payment_failed",
        target=invoice,
        changes={"number": invoice.number, "stripeInvoice": stripe_invoice.get("id")},
    )
    account = _account(invoice.org)
    if OrgBilling.objects.filter(pk=account.pk, payment_state=PaymentState.OK).update(
        payment_state=PaymentState.PAST_DUE, payment_failed_at=now
    ):
        record(
            "billing.payment_state_changed",
            target=account,
            org_id=invoice.org_id,
            changes={"from": PaymentState.OK, "to": PaymentState.PAST_DUE, "invoice": invoice.number},
        )
    grace = settings.VIBEBOX_DUNNING_GRACE_DAYS
    org = invoice.org
    url = stripe_invoice.get("hosted_invoice_url") or ""
    body = (
        f"The payment of {brand_for(org).name} invoice {invoice.number} ({invoice.total} {invoice.currency}, "
        f"{invoice.period_start:%Y-%m}) for {org.name} ({org.slug}) failed.\n\n"
        f"Please update the payment method (POST /api/v1/billing/checkout, or the billing page) "
        f"{f'or pay it here: {url} ' if url else ''}"
        f"within {grace} days; after that the organization's account is frozen and no new sandboxes "
        "can start until it is paid.\n"
    )
    transaction.on_commit(lambda: _tell(org, f"Payment of invoice {invoice.number} failed", body))


def _checkout_completed(session: dict) -> None:
    """A payment method was given: it becomes the customer's default for invoices."""
    customer_id = session.get("customer") or ""
    account = (
        OrgBilling.objects.filter(stripe_customer_id=customer_id).select_related("org").first() if customer_id else None
    )
    if account is None:
        logger.info("Checkout session %s is for no customer of ours", session.get("id"))
        return
    method = ""
    setup_intent = session.get("setup_intent")
    if setup_intent:
        method = stripe_api.setup_intent_payment_method(
            setup_intent if isinstance(setup_intent, str) else setup_intent.get("id", "")
        )
    if method:
        stripe_api.customer_set_default_payment_method(customer_id=customer_id, payment_method=method)
    record(
        "billing.payment_method_added",
        target=account,
        org_id=account.org_id,
        changes={"session": session.get("id"), "customer": customer_id, "paymentMethod": method},
    )


HANDLERS = {
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
    "checkout.session.completed": _checkout_completed,
}


def stripe_event_handle(*, payload: bytes, signature: str | None) -> dict:
    """Verifies and handles one webhook delivery. An event id seen before is a no-op (Stripe
    delivers at least once); the event's row and its effects commit together, so an event whose
    handling failed is handled again when Stripe redelivers it."""
    event = stripe_api.construct_event(payload, signature)
    event_id, event_type = event["id"], event["type"]
    obj = event["data"]["object"]
    obj = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    try:
        with transaction.atomic():
            if StripeEvent.objects.filter(pk=event_id).exists():
                return {"received": True, "duplicate": True}
            StripeEvent.objects.create(id=event_id, type=event_type[:100])
            handler = HANDLERS.get(event_type)
            if handler is not None:
                handler(obj)
    except IntegrityError:  # the same event delivered twice at once: the other one handles it
        return {"received": True, "duplicate": True}
    return {"received": True, "duplicate": False}


# ---- Dunning ----


def dunning_pass(*, now: dt.datetime | None = None) -> list[str]:
    """Freezes the accounts past due for longer than VIBEBOX_DUNNING_GRACE_DAYS; their orgs' ids."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=settings.VIBEBOX_DUNNING_GRACE_DAYS)
    frozen = []
    # Only while an invoice still stands failed (a voided or paid one no longer freezes anyone).
    due = OrgBilling.objects.filter(
        payment_state=PaymentState.PAST_DUE,
        payment_failed_at__lte=cutoff,
        org__invoices__status=InvoiceStatus.FAILED,
    ).distinct()
    for account in due.select_related("org"):
        with transaction.atomic():
            if not OrgBilling.objects.filter(pk=account.pk, payment_state=PaymentState.PAST_DUE).update(
                payment_state=PaymentState.FROZEN
            ):
                continue
            record(
                "billing.payment_state_changed",
                target=account,
                org_id=account.org_id,
                changes={
                    "from": PaymentState.PAST_DUE,
                    "to": PaymentState.FROZEN,
                    "failedAt": account.payment_failed_at.isoformat(),
                },
            )
        frozen.append(account.org_id)
        org = account.org
        _tell(
            org,
            f"{org.name}'s account is frozen",
            f"An invoice of {org.name} ({org.slug}) is unpaid {settings.VIBEBOX_DUNNING_GRACE_DAYS} days after its "
            "payment failed, so the account is frozen: running sandboxes keep running, but nothing new can "
            "start until the invoice is paid (update the payment method: POST /api/v1/billing/checkout).\n",
        )
    return frozen
