"""Sending deliveries (docs/webhooks.md): one sender per endpoint at a time (a lease on the
endpoint's row, so a killed worker's lease simply runs out), sending that endpoint's events in
their order; one endpoint's slowness never holds another's (each has its own task and lease).

An attempt: the body signed (Standard Webhooks), POSTed to the address checked just before
(safety.address_to_send), no redirects followed, 15 s at most, the answer read up to 64 KiB (4 KiB
kept). Any 2xx succeeds; anything else retries on VIBEBOX_WEBHOOK_RETRY_SCHEDULE with jitter, then
fails. The rows are the truth: a worker killed mid-attempt leaves the delivery due, and the next
sender sends it again with the same `webhook-id` (receivers dedupe on it).
"""

import datetime as dt
import json
import logging
import random
import secrets
import smtplib
import time

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import record
from apps.orgs import selectors as org_selectors
from apps.orgs.branding import brand_for
from vibebox import exceptions as errors
from vibebox import metrics

from . import safety, signing
from .models import Delivery, DeliveryAttempt, Webhook
from .services import secrets_of

logger = logging.getLogger(__name__)

USER_AGENT = f"VibeBox-Webhooks/{settings.SPECTACULAR_SETTINGS['VERSION']}"
READ_LIMIT = 64 * 1024  # bytes of an answer read
KEEP_BODY = 4 * 1024  # bytes of it kept
OPEN = (Delivery.Status.PENDING, Delivery.Status.RETRYING)
JITTER = 0.2  # a retry's delay is the schedule's ±20 %
BUDGET = 60.0  # seconds one sender task works on an endpoint before leaving the rest to the next


def lease_seconds() -> float:
    """How long a sender holds its endpoint without renewing (it renews before each attempt): an
    attempt takes at most the timeout, so only a dead sender lets it run out."""
    return 2 * settings.VIBEBOX_WEBHOOK_TIMEOUT + 15


def deliver_webhook(webhook_id: str, *, budget: float = BUDGET) -> int:
    """Sends the endpoint's due deliveries, in order, if no other sender holds it; answers how many
    attempts were made."""
    owner = secrets.token_hex(8)
    if not _claim(webhook_id, owner):
        return 0
    made, started = 0, time.monotonic()
    try:
        while time.monotonic() - started < budget:
            webhook = Webhook.objects.filter(pk=webhook_id).first()
            delivery = next_due(webhook) if webhook is not None else None
            if delivery is None:
                break
            if not _claim(webhook_id, owner, renew=True):
                break  # the lease ran out and another sender has it
            attempt(delivery, webhook)
            made += 1
    finally:
        Webhook.objects.filter(pk=webhook_id, lease_owner=owner).update(lease_until=None, lease_owner="")
    return made


def _claim(webhook_id: str, owner: str, *, renew: bool = False) -> bool:
    now = timezone.now()
    free = Q(lease_owner=owner) if renew else Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    until = now + dt.timedelta(seconds=lease_seconds())
    return bool(Webhook.objects.filter(free, pk=webhook_id).update(lease_until=until, lease_owner=owner))


def next_due(webhook: Webhook, now: dt.datetime | None = None) -> Delivery | None:
    """The endpoint's next delivery to send: a due test event or redelivery first (they are outside
    the order), else the oldest open event delivery if it is due (a later one waits for it:
    deliveries to one endpoint keep the order of events). An inactive endpoint gets only the former."""
    now = now or timezone.now()
    extra = (
        Delivery.objects.filter(webhook=webhook, seq__isnull=True, status__in=OPEN, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "created_at")
        .first()
    )
    if extra is not None or not webhook.active:
        return extra
    head = Delivery.objects.filter(webhook=webhook, seq__isnull=False, status__in=OPEN).order_by("seq").first()
    if head is not None and head.next_attempt_at is not None and head.next_attempt_at <= now:
        return head
    return None


def due_webhook_ids(now: dt.datetime | None = None) -> list[str]:
    """Endpoints with a due delivery and no sender holding them (the beat pass queues their tasks)."""
    now = now or timezone.now()
    due = Delivery.objects.filter(status__in=OPEN, next_attempt_at__lte=now).values("webhook_id")
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return list(Webhook.objects.filter(free, pk__in=due).values_list("pk", flat=True))


def body_of(delivery: Delivery) -> str:
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)


def attempt(delivery: Delivery, webhook: Webhook) -> DeliveryAttempt | None:
    """One attempt, recorded; the delivery moves on (succeeded, retrying with its next time, failed).
    None when the webhook was deleted while the request was out (nothing left to record)."""
    now = timezone.now()
    body = body_of(delivery)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signing.header(
            secrets_of(webhook, now), msg_id=delivery.event_id, timestamp=now, body=body
        ),
    }
    started = time.monotonic()
    status_code, answer, answer_headers, error = None, b"", {}, ""
    try:
        status_code, answer, answer_headers = _post(webhook.url, headers, body)
    except errors.WebhookTargetRefused as exc:
        error = f"refused: {exc.message} {exc.details.get('addresses', '')}".strip()
    except httpx.TimeoutException:
        error = f"timeout: no answer within {settings.VIBEBOX_WEBHOOK_TIMEOUT:g}s"
    except (httpx.HTTPError, OSError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    duration = int((time.monotonic() - started) * 1000)
    ok = status_code is not None and 200 <= status_code < 300
    try:
        with transaction.atomic():
            if not Delivery.objects.filter(pk=delivery.pk).exists():
                return None  # the webhook was deleted meanwhile, with its deliveries
            logged = DeliveryAttempt.objects.create(
                delivery=delivery,
                at=now,
                status_code=status_code,
                error=error[:500],
                request_headers=headers,
                response_headers=answer_headers,
                response_body=answer[:KEEP_BODY].decode("utf-8", "replace"),
                duration_ms=duration,
            )
            _settle(delivery, webhook, ok=ok, status_code=status_code, duration=duration)
    except IntegrityError:  # deleted between the check and the write
        logger.info("webhook %s was deleted during an attempt of %s", webhook.pk, delivery.pk)
        return None
    return logged


# vibebox_webhook_deliveries_total's outcome of an attempt, by the status it left the delivery in.
OUTCOMES = {
    Delivery.Status.SUCCEEDED: "delivered",
    Delivery.Status.RETRYING: "retrying",
    Delivery.Status.FAILED: "failed",
}


def _settle(delivery: Delivery, webhook: Webhook, *, ok: bool, status_code, duration: int) -> None:
    now = timezone.now()
    delivery.attempts += 1
    delivery.response_status = status_code
    delivery.duration_ms = duration
    schedule = settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE
    if ok:
        delivery.status, delivery.finished_at, delivery.next_attempt_at = Delivery.Status.SUCCEEDED, now, None
    elif delivery.attempts <= len(schedule):
        delay = schedule[delivery.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        delivery.status, delivery.next_attempt_at = Delivery.Status.RETRYING, now + dt.timedelta(seconds=delay)
    else:
        delivery.status, delivery.finished_at, delivery.next_attempt_at = Delivery.Status.FAILED, now, None
    delivery.save(
        update_fields=["attempts", "response_status", "duration_ms", "status", "finished_at", "next_attempt_at"]
    )
    transaction.on_commit(metrics.WEBHOOK_DELIVERIES.labels(OUTCOMES[delivery.status]).inc)
    if ok:
        Webhook.objects.filter(pk=webhook.pk, first_failure_at__isnull=False).update(first_failure_at=None)
        return
    Webhook.objects.filter(pk=webhook.pk, first_failure_at__isnull=True).update(first_failure_at=now)
    webhook.refresh_from_db(fields=["first_failure_at", "active"])
    limit = dt.timedelta(seconds=settings.VIBEBOX_WEBHOOK_DISABLE_AFTER)
    if webhook.active and webhook.first_failure_at and now - webhook.first_failure_at >= limit:
        reason = f"every delivery failed since {webhook.first_failure_at.isoformat()}"
        if Webhook.objects.filter(pk=webhook.pk, active=True).update(active=False, disabled_reason=reason):
            record("webhook.disabled", target=webhook, changes={"reason": reason})
            transaction.on_commit(lambda: _tell_admins(webhook, reason))


def _tell_admins(webhook: Webhook, reason: str) -> None:
    """Emails the organization's members who manage its webhooks that one was turned off."""
    org = webhook.org
    to = [
        membership.user.email
        for membership in org_selectors.member_list(org=org)
        if membership.user.email
        and "webhooks.manage" in (org_selectors.member_permissions(user=membership.user, org=org) or ())
    ]
    if not to:
        return
    body = (
        f"{brand_for(org).name} turned off the webhook {webhook.id} of {org.name} ({org.slug}), which posts to\n"
        f"{webhook.url}\nbecause {reason}.\n\nIts deliveries since then are kept, with each attempt's answer "
        "(GET /api/v1/webhooks/{id}/deliveries). Fix the endpoint, then turn the webhook on again:\n"
        f'PATCH /api/v1/webhooks/{webhook.id} {{"active": true}}\n'
    )
    try:
        brand = brand_for(org)
        send_mail(f"[{brand.name}] Webhook {webhook.id} turned off", body, brand.email_from, to)
    except (smtplib.SMTPException, OSError):  # the webhook's state and the audit log say it anyway
        logger.exception("Could not email %s that webhook %s was turned off", org.slug, webhook.id)


def _post(url: str, headers: dict, body: str) -> tuple[int, bytes, dict]:
    """POSTs to the checked address (the URL's host kept in Host and TLS's server name), with no
    redirects; answers (status, the first 64 KiB of the answer, its headers)."""
    target, address = safety.address_to_send(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    default_port = 443 if target.scheme == "https" else 80
    netloc = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:
        netloc = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    timeout = settings.VIBEBOX_WEBHOOK_TIMEOUT
    deadline = time.monotonic() + timeout
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        request = client.build_request(
            "POST",
            f"{target.scheme}://{host}:{target.port}{target.path}",
            content=body.encode(),
            headers={**headers, "host": netloc},
            extensions=extensions,
        )
        response = client.send(request, stream=True)
        try:
            answer = b""
            for chunk in response.iter_raw():
                answer += chunk
                if len(answer) >= READ_LIMIT:
                    break
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer took too long")
            return response.status_code, answer[:READ_LIMIT], dict(response.headers)
        finally:
            response.close()


PRUNE_BATCH = 1000


def prune(now: dt.datetime | None = None) -> int:
    """Removes finished deliveries (succeeded, failed) older than VIBEBOX_WEBHOOK_RETENTION, with
    their attempts, a batch at a time; open ones stay whatever their age. Answers how many."""
    if settings.VIBEBOX_WEBHOOK_RETENTION <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=settings.VIBEBOX_WEBHOOK_RETENTION)
    old = Delivery.objects.filter(status__in=(Delivery.Status.SUCCEEDED, Delivery.Status.FAILED), created_at__lt=cutoff)
    removed = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            return removed
        Delivery.objects.filter(pk__in=ids).delete()  # attempts with them; redeliveries keep a null link
        removed += len(ids)
