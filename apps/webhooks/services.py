"""Writes for webhooks: the endpoints (create, update, delete, rotate the secret, send a test),
redeliveries, and `emit`, which writes an event's deliveries (the outbox) in the caller's
transaction."""

import datetime as dt
import json
import logging

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.actors import Actor
from apps.orgs.branding import brand_for
from vibebox import crypto
from vibebox import exceptions as errors
from vibebox.celery import app as celery_app

from . import catalog, safety, signing
from .models import Delivery, Webhook, new_event_id

logger = logging.getLogger(__name__)

ROTATION_OVERLAP = dt.timedelta(hours=24)
FILTER_KEYS = ("sandboxId", "template", "metadata")


def _events(events) -> list[str]:
    if not isinstance(events, list) or not events:
        raise errors.ValidationFailed("events: name at least one event, or '*'.")
    unknown = catalog.unknown(events)
    if unknown:
        raise errors.UnknownEvent(
            f"Unknown event(s): {', '.join(unknown)}.", details={"unknown": unknown, "known": list(catalog.EVENTS)}
        )
    return [catalog.ALL] if catalog.ALL in events else list(dict.fromkeys(events))


def normalize_filter(value: dict | None) -> dict:
    """{"sandboxId", "template", "metadata": {k: v}}; "metadata.<key>": v is taken as metadata's key."""
    if not value:
        return {}
    clean: dict = {}
    metadata: dict[str, str] = {}
    for key, item in value.items():
        if key.startswith("metadata.") and len(key) > len("metadata.") and isinstance(item, str):
            metadata[key[len("metadata.") :]] = item
        elif key == "metadata" and isinstance(item, dict) and all(isinstance(v, str) for v in item.values()):
            metadata.update(item)
        elif key in ("sandboxId", "template") and isinstance(item, str) and item:
            clean[key] = item
        else:
            raise errors.ValidationFailed(
                "filter takes sandboxId, template (strings) and metadata (a map of strings).",
                details={"fields": {"filter": [{"message": f"bad filter key {key[:64]!r}", "code": "invalid"}]}},
            )
    if metadata:
        clean["metadata"] = metadata
    return clean


def webhook_create(
    *,
    actor: Actor,
    url: str,
    events: list[str],
    description: str = "",
    active: bool = True,
    filter: dict | None = None,
) -> tuple[Webhook, str]:
    """A new endpoint of the actor's organization (webhooks.manage) and its secret, shown once."""
    actor.require("webhooks.manage")
    safety.check(url)
    events, filter = _events(events), normalize_filter(filter)
    secret = signing.new_secret()
    with transaction.atomic():
        webhook = Webhook.objects.create(
            org=actor.org,
            url=url.strip(),
            events=events,
            description=description,
            active=active,
            filter=filter,
            secret=crypto.encrypt(secret),
            created_by=actor.user if getattr(actor.user, "pk", None) else None,
        )
        record(
            "webhook.created",
            target=webhook,
            changes={"url": webhook.url, "events": events, "active": active, "filter": filter},
        )
    return webhook, secret


def webhook_update(*, actor: Actor, webhook: Webhook, **fields) -> Webhook:
    """Changes url, events, description, active or filter; turning a disabled one on again clears
    why it was disabled and its failure streak."""
    actor.require("webhooks.manage")
    changes: dict = {}
    if "url" in fields:
        safety.check(fields["url"])
        changes["url"] = fields["url"].strip()
    if "events" in fields:
        changes["events"] = _events(fields["events"])
    if "filter" in fields:
        changes["filter"] = normalize_filter(fields["filter"])
    for name in ("description", "active"):
        if name in fields:
            changes[name] = fields[name]
    if changes.get("active") and not webhook.active:
        changes.update(disabled_reason="", first_failure_at=None)
    with transaction.atomic():
        for name, value in changes.items():
            setattr(webhook, name, value)
        webhook.save(update_fields=[*changes, "updated_at"])
        record("webhook.updated", target=webhook, changes={k: v for k, v in changes.items() if k != "first_failure_at"})
    if changes.get("active"):
        _dispatch_on_commit(webhook.pk)
    return webhook


def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    """Removes the endpoint with its delivery history; nothing more is sent to it."""
    actor.require("webhooks.manage")
    with transaction.atomic():
        record("webhook.deleted", target=webhook, changes={"url": webhook.url})
        webhook.delete()


def webhook_rotate_secret(*, actor: Actor, webhook: Webhook) -> tuple[Webhook, str]:
    """A new secret, shown once; the current one keeps signing beside it (two signatures) for 24 h."""
    actor.require("webhooks.manage")
    secret = signing.new_secret()
    with transaction.atomic():
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
        webhook.secret = crypto.encrypt(secret)
        webhook.save(update_fields=["previous_secret", "previous_secret_expires_at", "secret", "updated_at"])
        record(
            "webhook.secret_rotated",
            target=webhook,
            changes={"previousValidUntil": webhook.previous_secret_expires_at.isoformat()},
        )
    return webhook, secret


def secrets_of(webhook: Webhook, now: dt.datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its overlap."""
    now = now or timezone.now()
    found = [crypto.decrypt(webhook.secret)]
    if webhook.previous_secret and webhook.previous_secret_expires_at and webhook.previous_secret_expires_at > now:
        found.append(crypto.decrypt(webhook.previous_secret))
    return found


def webhook_test(*, actor: Actor, webhook: Webhook) -> Delivery:
    """Queues a `webhook.test` event to this endpoint alone, sent at once (outside the order of its
    events, even while it is inactive)."""
    actor.require("webhooks.manage")
    data = {"webhookId": webhook.id, "message": f"A test event from {brand_for(webhook.org).name}."}
    with transaction.atomic():
        delivery = _delivery(webhook, event_id=new_event_id(), payload=_payload(catalog.TEST, data), ordered=False)
        record("webhook.tested", target=webhook, changes={"delivery": delivery.id})
    return delivery


def delivery_redeliver(*, actor: Actor, delivery: Delivery) -> Delivery:
    """Sends a delivery's event again, as a new delivery with the same event id (`webhook-id`) and
    body, at once and outside the endpoint's order."""
    actor.require("webhooks.manage")
    with transaction.atomic():
        copy = _delivery(
            delivery.webhook, event_id=delivery.event_id, payload=delivery.payload, ordered=False, of=delivery
        )
        record(
            "delivery.redelivered",
            org_id=delivery.webhook.org_id,
            target_type="delivery",
            target_id=delivery.id,
            changes={"webhook": delivery.webhook_id, "event": delivery.event, "redelivery": copy.id},
        )
    return copy


def subscribed(webhook: Webhook, event: str) -> bool:
    return catalog.ALL in webhook.events or event in webhook.events


def matches(filter: dict, sandbox=None, template: str | None = None) -> bool:
    """Whether an event of `sandbox` (None: not a sandbox's) passes an endpoint's filter. An
    endpoint with a filter hears only of the sandboxes that match it, and of the templates its
    `template` key names (a template's own events: `template`, its name)."""
    if not filter:
        return True
    if sandbox is None:
        return template is not None and set(filter) == {"template"} and filter["template"] == template
    if "sandboxId" in filter and filter["sandboxId"] != sandbox.id:
        return False
    if "template" in filter and filter["template"] not in (sandbox.template.name, *(sandbox.template.aliases or [])):
        return False
    metadata = sandbox.metadata or {}
    return all(key in metadata and str(metadata[key]) == value for key, value in filter.get("metadata", {}).items())


def active_webhooks(org_id: str) -> list[Webhook]:
    """The organization's active endpoints (one query; emit() takes them to spare another)."""
    return list(Webhook.objects.filter(org_id=org_id, active=True)) if org_id else []


def emit(
    *, org_id: str, type: str, data, sandbox=None, hooks: list[Webhook] | None = None, template: str | None = None
) -> list[Delivery]:
    """Writes one delivery per active endpoint of the organization that subscribes to `type` and
    whose filter `sandbox` (or, for a template's own event, `template`) passes, in the caller's
    transaction (the outbox): they commit or roll back with the change that caused the event.
    `data` may be a callable, called only when some endpoint wants the event; `hooks`, the
    organization's active_webhooks() if the caller has them.
    Each endpoint's task is queued when the transaction commits."""
    if type not in catalog.EVENTS:
        raise ValueError(f"unknown webhook event {type!r}")
    if not org_id:
        return []
    hooks = [
        hook
        for hook in (active_webhooks(org_id) if hooks is None else hooks)
        if subscribed(hook, type) and matches(hook.filter, sandbox, template)
    ]
    return _write(hooks, type, data)


def emit_public(*, type: str, data, template: str) -> list[Delivery]:
    """emit() for an event every organization may hear of (a public template's): one delivery per
    active endpoint of any organization that subscribes to it, all with one event id."""
    if type not in catalog.EVENTS:
        raise ValueError(f"unknown webhook event {type!r}")
    hooks = [
        hook
        for hook in Webhook.objects.filter(active=True).order_by("pk")
        if subscribed(hook, type) and matches(hook.filter, template=template)
    ]
    return _write(hooks, type, data)


def _write(hooks: list[Webhook], type: str, data) -> list[Delivery]:
    """One delivery per endpoint in `hooks`, all with one event id (`data` rendered once, if any)."""
    if not hooks:
        return []
    payload = _payload(type, data() if callable(data) else data)
    event_id = new_event_id()
    with transaction.atomic():
        return [_delivery(hook, event_id=event_id, payload=payload, ordered=True) for hook in hooks]


def _payload(type: str, data) -> dict:
    payload = {"type": type, "timestamp": timezone.now().isoformat().replace("+00:00", "Z"), "data": data}
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))  # what the database gives back


def _delivery(webhook: Webhook, *, event_id: str, payload: dict, ordered: bool, of: Delivery | None = None):
    seq = None
    if ordered:
        # The row's lock (PostgreSQL) is held to the commit: sequence order is commit order.
        Webhook.objects.filter(pk=webhook.pk).update(last_seq=F("last_seq") + 1)
        seq = Webhook.objects.filter(pk=webhook.pk).values_list("last_seq", flat=True).get()
    delivery = Delivery.objects.create(
        webhook=webhook,
        event_id=event_id,
        event=payload["type"],
        payload=payload,
        seq=seq,
        next_attempt_at=timezone.now(),
        redelivery_of=of,
    )
    _dispatch_on_commit(webhook.pk)
    return delivery


def _dispatch_on_commit(webhook_id: str) -> None:
    if settings.VIBEBOX_WEBHOOK_DISPATCH:
        transaction.on_commit(lambda: dispatch(webhook_id))


SENDER_TASK = "apps.webhooks.tasks.deliver_webhook"


def dispatch(webhook_id: str) -> None:
    """Queues the endpoint's sender now; if the broker is down the beat pass sends it later."""
    try:
        celery_app.send_task(SENDER_TASK, args=[webhook_id], expires=3600)
    except Exception as exc:  # the row is kept; the next beat pass picks it up
        logger.warning("webhook %s: sender not queued (%s); the beat pass will send", webhook_id, exc)
