"""The Stripe boundary: the only module that imports `stripe` (the official library). It turns
Stripe's errors into ours: a network failure, a rate limit or a 5xx is PaymentProviderUnavailable
(retried by the tasks), a bad webhook signature StripeSignatureInvalid.

Every create sends an idempotency key derived from our own ids, so a retry after a lost answer
(ours or the library's own retries) makes nothing twice.
"""

import logging

import stripe
from django.conf import settings

from vibebox import exceptions as errors

logger = logging.getLogger(__name__)

NETWORK_RETRIES = 2  # the library's own retries (with the same idempotency key) before ours


def enabled() -> bool:
    return bool(settings.VIBEBOX_STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    if not enabled():
        raise errors.PaymentsNotConfigured()
    base = {"api": settings.VIBEBOX_STRIPE_API_BASE} if settings.VIBEBOX_STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.VIBEBOX_STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=NETWORK_RETRIES
    )


def _call(what: str, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None) or 0
        # Worth retrying: no answer, a rate limit, Stripe's own failure; a 4xx says we asked wrong.
        transient = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or status >= 500
        logger.warning("Stripe %s failed (%s): %s", what, status or "no answer", exc)
        raise errors.PaymentProviderUnavailable(
            details={
                "call": what,
                "status": status,
                "transient": transient,
                "reason": str(getattr(exc, "user_message", "") or exc)[:200],
            }
        ) from exc


def _options(idempotency_key: str) -> dict:
    return {"idempotency_key": idempotency_key}


def customer_create(*, org_id: str, name: str, email: str, key: str) -> str:
    params = {"name": name, "metadata": {"vibebox_org": org_id}}
    if email:
        params["email"] = email
    customer = _call("customers.create", client().v1.customers.create, params=params, options=_options(key))
    return customer.id


def customer_set_default_payment_method(*, customer_id: str, payment_method: str) -> None:
    _call(
        "customers.update",
        client().v1.customers.update,
        customer_id,
        params={"invoice_settings": {"default_payment_method": payment_method}},
    )


def setup_intent_payment_method(setup_intent_id: str) -> str:
    intent = _call("setup_intents.retrieve", client().v1.setup_intents.retrieve, setup_intent_id)
    method = intent.to_dict().get("payment_method")
    return method if isinstance(method, str) else (method or {}).get("id", "")


def checkout_session_create(
    *, customer_id: str, org_id: str, currency: str, success_url: str, cancel_url: str, key: str
) -> tuple[str, str]:
    """A Checkout session in setup mode (collects a payment method, charges nothing): (id, url)."""
    session = _call(
        "checkout.sessions.create",
        client().v1.checkout.sessions.create,
        params={
            "mode": "setup",
            "customer": customer_id,
            "currency": currency.lower(),
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": org_id,
            "metadata": {"vibebox_org": org_id},
            "setup_intent_data": {"metadata": {"vibebox_org": org_id}},
        },
        options=_options(key),
    )
    return session.id, session.url


def invoice_create(*, customer_id: str, currency: str, metadata: dict, description: str, key: str) -> str:
    """A draft invoice that takes only the items we add to it, charged automatically once finalized."""
    invoice = _call(
        "invoices.create",
        client().v1.invoices.create,
        params={
            "customer": customer_id,
            "currency": currency.lower(),
            "collection_method": "charge_automatically",
            "auto_advance": True,
            "pending_invoice_items_behavior": "exclude",
            "description": description,
            "metadata": metadata,
        },
        options=_options(key),
    )
    return invoice.id


def invoice_item_create(
    *, customer_id: str, invoice_id: str, currency: str, amount_cents: int, description: str, key: str
) -> str:
    item = _call(
        "invoiceitems.create",
        client().v1.invoice_items.create,
        params={
            "customer": customer_id,
            "invoice": invoice_id,
            "currency": currency.lower(),
            "amount": amount_cents,
            "description": description,
        },
        options=_options(key),
    )
    return item.id


def invoice_finalize(*, invoice_id: str, key: str) -> str:
    """Finalizes the draft (Stripe then charges the customer's default payment method); its status."""
    invoice = _call(
        "invoices.finalize_invoice",
        client().v1.invoices.finalize_invoice,
        invoice_id,
        params={"auto_advance": True},
        options=_options(key),
    )
    return invoice.status


def construct_event(payload: bytes, signature: str | None):
    """The webhook's event, once its Stripe-Signature header verifies against the body with
    VIBEBOX_STRIPE_WEBHOOK_SECRET (within the library's tolerance of 5 minutes)."""
    secret = settings.VIBEBOX_STRIPE_WEBHOOK_SECRET
    if not enabled() or not secret:
        raise errors.PaymentsNotConfigured()
    try:
        return stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise errors.StripeSignatureInvalid(details={"reason": str(exc)[:200]}) from None
    except ValueError as exc:  # not JSON
        raise errors.StripeSignatureInvalid(
            "The body is not a Stripe event.", details={"reason": str(exc)[:200]}
        ) from None
