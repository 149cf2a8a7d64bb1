"""The organization's webhooks (`/org/webhooks/`, a tab of the organization pages shown with
webhooks.manage): the endpoints with their last delivery and how long they have been failing, a new
one (the events picked by resource, or all; a description; a filter on sandbox, template and
metadata), the signing secret shown once after create and rotate; an endpoint's page (edit,
enable or disable, rotate the secret, send a test event, delete) with its delivery log, refreshed
by htmx every few seconds while one of its deliveries is pending or retrying; and a delivery's page
(the request body, each attempt's status, headers and answer) with "redeliver".

Reads and writes go through apps/webhooks' selectors and services with the request's Actor, as the
REST API does (apps/webhooks/api/views.py): a member without webhooks.manage gets a 403 page naming
it, another organization's webhook or delivery is a 404 page, and every write is in the audit log
(source `dashboard`). Forms carry the organization they were shown for, as the other organization
pages' do.
"""

import json
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.orgs.actors import Actor
from apps.webhooks import catalog, selectors, services
from apps.webhooks.api.serializers import URL_MESSAGE, URL_PATTERN
from apps.webhooks.models import Delivery, Webhook
from vibebox import exceptions as errors

from .orgs import _actor, _page, carry_out, writes_to

WEBHOOKS_MANAGE = "webhooks.manage"
LOG_SIZE = 50  # deliveries shown on an endpoint's page, newest first
POLL = "every 3s"  # while a shown delivery is pending or retrying
LIST = "dashboard:org-webhooks"


# ---- helpers ----


def _denied(exc: errors.PermissionDenied):
    return DjangoPermissionDenied(exc.message)


def _webhooks(actor: Actor) -> list[Webhook]:
    try:
        return list(selectors.webhook_list(actor=actor))
    except errors.PermissionDenied as exc:
        raise _denied(exc) from None


def _webhook(actor: Actor, webhook_id: str) -> Webhook:
    """Another organization's webhook is a 404 (before any permission is asked, as in the API)."""
    try:
        return selectors.webhook_get(actor=actor, id=webhook_id)
    except errors.WebhookNotFound:
        raise Http404("No such webhook.") from None
    except errors.PermissionDenied as exc:
        raise _denied(exc) from None


def _delivery(webhook: Webhook, delivery_id: str) -> Delivery:
    try:
        return selectors.delivery_get(webhook=webhook, id=delivery_id)
    except errors.DeliveryNotFound:
        raise Http404("No such delivery of this webhook.") from None


def _event_groups() -> list[dict]:
    """The catalogue's events grouped by resource (the name's first part), in catalogue order."""
    groups: dict[str, list[dict]] = {}
    for name, text in catalog.EVENTS.items():
        groups.setdefault(name.split(".", 1)[0], []).append({"name": name, "text": text})
    return [{"resource": resource.replace("_", " "), "events": events} for resource, events in groups.items()]


def _blank_form() -> dict:
    return {
        "url": "",
        "events": [],
        "description": "",
        "active": True,
        "sandbox_id": "",
        "template": "",
        "metadata": "",
    }


def _form_of(webhook: Webhook) -> dict:
    """The edit form, filled from the endpoint."""
    return {
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "active": webhook.active,
        "sandbox_id": webhook.filter.get("sandboxId", ""),
        "template": webhook.filter.get("template", ""),
        "metadata": "\n".join(f"{key}={value}" for key, value in webhook.filter.get("metadata", {}).items()),
    }


def _posted_form(request) -> dict:
    post = request.POST
    return {
        "url": post.get("url", "").strip(),
        "events": post.getlist("events"),
        "description": post.get("description", "").strip(),
        "active": post.get("active") == "on",
        "sandbox_id": post.get("sandbox_id", "").strip(),
        "template": post.get("template", "").strip(),
        "metadata": post.get("metadata", ""),
    }


def _read_form(form: dict) -> tuple[dict, list[str]]:
    """(the service's arguments, problems): the shapes the API's serializers check; the service
    checks the rest (a known event, a safe target) and says so with its code."""
    problems = []
    url = form["url"]
    if not url:
        problems.append("Give the endpoint's URL.")
    elif len(url) > 2000 or not re.match(URL_PATTERN, url):
        problems.append(URL_MESSAGE)
    events = [catalog.ALL] if catalog.ALL in form["events"] else form["events"]
    if not events:
        problems.append("Choose at least one event, or all events.")
    if len(form["description"]) > 500:
        problems.append("The description is at most 500 characters.")
    filter: dict = {}
    if form["sandbox_id"]:
        if len(form["sandbox_id"]) > 64:
            problems.append("Filter: a sandbox id is at most 64 characters.")
        filter["sandboxId"] = form["sandbox_id"]
    if form["template"]:
        if len(form["template"]) > 100:
            problems.append("Filter: a template name is at most 100 characters.")
        filter["template"] = form["template"]
    metadata = {}
    for number, line in enumerate(form["metadata"].splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            problems.append(f"Filter: metadata line {number} is not key=value.")
        elif len(value.strip()) > 1000:
            problems.append(f"Filter: the value on metadata line {number} is over 1000 characters.")
        else:
            metadata[key.strip()] = value.strip()
    if metadata:
        filter["metadata"] = metadata
    fields = {"url": url, "events": events, "description": form["description"], "filter": filter}
    return fields, problems


def _with_last_delivery(webhooks: list[Webhook]) -> list[Webhook]:
    latest = selectors.delivery_latest(webhooks=webhooks)
    for webhook in webhooks:
        webhook.last_delivery = latest.get(webhook.pk)
    return webhooks


def _list_page(request, actor: Actor, *, form=None, problems=(), created=None, secret=None):
    webhooks = _with_last_delivery(_webhooks(actor))
    return _page(
        request,
        "dashboard/org_webhooks.html",
        "webhooks",
        actor,
        webhooks=webhooks,
        form=form or _blank_form(),
        form_errors=list(problems),
        event_groups=_event_groups(),
        all_events=catalog.ALL,
        created=created,
        secret=secret,
    )


def _deliveries(request, webhook: Webhook) -> dict:
    """The endpoint's delivery log (optionally one status), and whether it is to be refreshed."""
    status = request.GET.get("status", "")
    if status not in Delivery.Status.values:
        status = ""
    rows = list(selectors.delivery_list(webhook=webhook, status=status or None)[:LOG_SIZE])
    return {
        "deliveries": rows,
        "status_filter": status,
        "statuses": Delivery.Status.values,
        "polling": any(delivery.open for delivery in rows),
        "poll_trigger": POLL,
    }


def _endpoint_page(request, actor: Actor, webhook: Webhook, *, form=None, problems=(), secret=None):
    context = _deliveries(request, webhook)
    if request.htmx and request.GET.get("partial") == "deliveries":
        return render(request, "dashboard/partials/webhook_deliveries.html", {"webhook": webhook, **context})
    return _page(
        request,
        "dashboard/org_webhook.html",
        "webhooks",
        actor,
        webhook=webhook,
        form=form or _form_of(webhook),
        form_errors=list(problems),
        event_groups=_event_groups(),
        all_events=catalog.ALL,
        secret=secret,
        overlap_until=_overlap_until(webhook),
        **context,
    )


def _overlap_until(webhook: Webhook):
    """After a rotation, until when the previous secret signs too (None once that has passed)."""
    until = webhook.previous_secret_expires_at
    return until if until and until > timezone.now() else None


def _endpoint_url(webhook: Webhook) -> str:
    return reverse("dashboard:org-webhook", args=[webhook.pk])


# ---- the list and a new endpoint ----


@login_required
@require_GET
def webhooks_page(request):
    return _list_page(request, _actor(request, WEBHOOKS_MANAGE))


@writes_to(LIST)
def webhook_create(request):
    """A new endpoint; its secret is shown on the answer only (copy it now)."""
    actor = _actor(request, WEBHOOKS_MANAGE)
    form = _posted_form(request)
    fields, problems = _read_form(form)
    if not problems:
        try:
            webhook, secret = services.webhook_create(actor=actor, active=form["active"], **fields)
        except errors.PermissionDenied as exc:
            raise _denied(exc) from None
        except errors.ApplicationError as exc:
            problems.append(f"{exc.message} ({exc.code})")
        else:
            messages.success(request, f"Webhook to {webhook.url} created.")
            return _list_page(request, actor, created=webhook, secret=secret)
    # 200 like the other dashboard forms: htmx (boosted forms) does not swap 4xx responses.
    return _list_page(request, actor, form=form, problems=problems)


# ---- one endpoint ----


@login_required
@require_GET
def webhook_page(request, webhook_id: str):
    actor = _actor(request)
    return _endpoint_page(request, actor, _webhook(actor, webhook_id))


@writes_to(LIST)
def webhook_edit(request, webhook_id: str):
    """Changes the URL, events, description and filter (whether it is on: the enable button)."""
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    form = {**_posted_form(request), "active": webhook.active}
    fields, problems = _read_form(form)
    if not problems:
        try:
            services.webhook_update(actor=actor, webhook=webhook, **fields)
        except errors.PermissionDenied as exc:
            raise _denied(exc) from None
        except errors.ApplicationError as exc:
            problems.append(f"{exc.message} ({exc.code})")
            webhook.refresh_from_db()
        else:
            messages.success(request, "Webhook saved.")
            return redirect(_endpoint_url(webhook))
    return _endpoint_page(request, actor, webhook, form=form, problems=problems)


@writes_to(LIST)
def webhook_active(request, webhook_id: str):
    """Turns the endpoint on (`active=1`: its waiting deliveries go out) or off."""
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    on = request.POST.get("active") == "1"
    done = "enabled: its waiting deliveries go out now" if on else "disabled: nothing is sent to it until enabled"
    return carry_out(
        request,
        _endpoint_url(webhook),
        lambda: services.webhook_update(actor=actor, webhook=webhook, active=on),
        f"Webhook {done}.",
    )


@writes_to(LIST)
def webhook_rotate(request, webhook_id: str):
    """A new secret, shown on the answer only; the previous one signs beside it for 24 h."""
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    try:
        webhook, secret = services.webhook_rotate_secret(actor=actor, webhook=webhook)
    except errors.PermissionDenied as exc:
        raise _denied(exc) from None
    expires = f"{webhook.previous_secret_expires_at:%Y-%m-%d %H:%M}"
    messages.success(request, f"Secret rotated: the previous one keeps signing beside it until {expires} UTC.")
    return _endpoint_page(request, actor, webhook, secret=secret)


@writes_to(LIST)
def webhook_test(request, webhook_id: str):
    """Queues a `webhook.test` event to this endpoint alone, sent at once (also while it is off)."""
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    return carry_out(
        request,
        _endpoint_url(webhook),
        lambda: services.webhook_test(actor=actor, webhook=webhook),
        lambda delivery: f"Test event sent as {delivery.id}: its status shows in the delivery log.",
    )


@writes_to(LIST)
def webhook_delete(request, webhook_id: str):
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    url = webhook.url
    return carry_out(
        request,
        LIST,
        lambda: services.webhook_delete(actor=actor, webhook=webhook),
        f"Webhook to {url} deleted, with its delivery history.",
    )


# ---- deliveries ----


@login_required
@require_GET
def delivery_page(request, webhook_id: str, delivery_id: str):
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    delivery = _delivery(webhook, delivery_id)
    attempts = list(delivery.attempt_log.all())
    context = {
        "webhook": webhook,
        "delivery": delivery,
        "attempts": attempts,
        "payload": json.dumps(delivery.payload, indent=2, ensure_ascii=False),
        "polling": delivery.open,
        "poll_trigger": POLL,
    }
    if request.htmx and request.GET.get("partial") == "delivery":
        return render(request, "dashboard/partials/webhook_delivery_body.html", context)
    return _page(request, "dashboard/org_webhook_delivery.html", "webhooks", actor, **context)


@writes_to(LIST)
def delivery_redeliver(request, webhook_id: str, delivery_id: str):
    """Sends the event again as a new delivery (same event id and body), at once; shows the new one."""
    actor = _actor(request)
    webhook = _webhook(actor, webhook_id)
    delivery = _delivery(webhook, delivery_id)
    try:
        copy = services.delivery_redeliver(actor=actor, delivery=delivery)
    except errors.PermissionDenied as exc:
        raise _denied(exc) from None
    messages.success(request, f"Redelivering {delivery.event} as {copy.id} (the same webhook-id, {copy.event_id}).")
    return redirect("dashboard:org-webhook-delivery", webhook_id=webhook.pk, delivery_id=copy.pk)
