"""Live costs: every VIBEBOX_BILLING_LIVE_INTERVAL (default 15 s) Celery beat sends
`publish_live_costs`, which tells the members who may read an organization's billing what its
running sandboxes have cost so far and cost per hour, as a `billing.cost` event on their activity
feed (apps/sandboxes/events.py `publish_owner`). The dashboard's billing page (/billing/) updates
its numbers from it without a reload.

The event (one per organization with running sandboxes, to each member holding billing.read whose
activity feed is open: an organization nobody watches costs one Redis round trip, not a cost
computation):

    {"type": "billing.cost", "sandboxId": null, "text": "...", "timestamp": ...,
     "data": {"orgId": "org_…", "currency": "USD", "at": "2026-12-03T20:41:15Z",
              "monthToDate": "12.345678", "forecast": "40.10", "ratePerHour": "0.084000",
              "sandboxes": [{"sandboxId": "sbx_…", "name": "…", "template": "python-3.13",
                             "total": "0.012345", "ratePerHour": "0.042000"}, …]}}

Amounts are decimal strings (never floats). The activity consumer passes `billing.*` events to
an API key only when the key is of that organization and holds the `billing:read` scope.
"""

import datetime as dt
import logging
from decimal import Decimal

from celery import shared_task
from django.utils import timezone

from apps.orgs import selectors as org_selectors
from apps.orgs.models import Organization
from apps.sandboxes import events
from apps.sandboxes.models import Sandbox, Status
from apps.sandboxes.tasks import single_pass

from . import costs, plans

logger = logging.getLogger(__name__)

BILLING_READ = "billing.read"
EVENT = "billing.cost"
PLACES = Decimal("0.000001")


def amount(value) -> str:
    """A Decimal as the string the API and the events use: six places, never a float."""
    return str(Decimal(value).quantize(PLACES))


def forecast(month_to_date: Decimal, now: dt.datetime) -> Decimal:
    """The month's expected total: month to date ÷ the elapsed fraction of the (UTC calendar)
    month, i.e. the month to date's average rate carried on to the month's end. Before the first
    hour of the month has passed it is the month to date itself (too little to go on)."""
    start, end = plans.month_bounds(now)
    elapsed = (now - start).total_seconds()
    whole = (end - start).total_seconds()
    if elapsed < 3600:
        return Decimal(month_to_date)
    return (Decimal(month_to_date) * Decimal(whole) / Decimal(elapsed)).quantize(Decimal("0.01"))


def billing_readers(org) -> list[int]:
    """The ids of the organization's members who hold billing.read (by role or team)."""
    return [
        membership.user_id
        for membership in org_selectors.member_list(org=org)
        if BILLING_READ in org_selectors.permissions_of(user=membership.user, org=org)
    ]


def running_costs(org) -> list[dict]:
    """Each running sandbox of the organization: its cost so far and its current rate per hour."""
    rows = []
    running = Sandbox.objects.filter(org=org, status=Status.RUNNING).select_related("template").order_by("created_at")
    for sandbox in running:
        cost = costs.sandbox_cost(sandbox)
        rows.append(
            {
                "sandboxId": sandbox.id,
                "name": sandbox.name,
                "template": sandbox.template.name if sandbox.template_id else "",
                "total": amount(cost["total"]),
                "ratePerHour": amount(cost["ratePerHour"]),
                "currency": cost.get("currency", ""),
            }
        )
    return rows


def org_snapshot(org, now: dt.datetime | None = None) -> dict:
    """What one `billing.cost` event says about an organization."""
    now = now or timezone.now()
    sandboxes = running_costs(org)
    to_date = costs.month_to_date(org, now=now)
    currency = plans.plan_at(org, now).currency
    return {
        "orgId": org.pk,
        "currency": currency,
        "at": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "monthToDate": amount(to_date),
        "forecast": amount(forecast(to_date, now)),
        "ratePerHour": amount(sum((Decimal(row["ratePerHour"]) for row in sandboxes), Decimal(0))),
        "sandboxes": sandboxes,
    }


def publish_org(org, now: dt.datetime | None = None) -> int:
    """Sends the organization's `billing.cost` event to its billing readers who have their activity
    feed open (the costs are computed only then); how many were sent to."""
    readers = sorted(events.listening(billing_readers(org)))
    if not readers:
        return 0
    data = org_snapshot(org, now)
    count = len(data["sandboxes"])
    text = f"{count} running sandbox{'es' if count != 1 else ''}: {data['ratePerHour']} {data['currency']}/h"
    for user_id in readers:
        events.publish_owner(user_id, EVENT, text, data)
    return len(readers)


@shared_task(ignore_result=True)
def publish_live_costs() -> dict:
    """Beat runs this every VIBEBOX_BILLING_LIVE_INTERVAL: one `billing.cost` event per
    organization with running sandboxes, to each of its billing readers with a feed open. A
    failing organization is logged and skipped; the others are still told. One pass at a time
    (a pass that finds the last one still running does nothing: the next interval brings another)."""
    with single_pass("billing-live-costs") as held:
        if not held:
            return {"skipped": True}
        return _publish_all()


def _publish_all() -> dict:
    now = timezone.now()
    org_ids = Sandbox.objects.filter(status=Status.RUNNING).values_list("org_id", flat=True).distinct()
    orgs, readers = 0, 0
    for org in Organization.objects.filter(pk__in=list(org_ids)).order_by("pk"):
        try:
            sent = publish_org(org, now)
        except Exception:
            logger.exception("live costs of %s not published", org.pk)
            continue
        orgs += 1 if sent else 0
        readers += sent
    return {"orgs": orgs, "readers": readers}
