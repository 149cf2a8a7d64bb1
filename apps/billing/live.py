"""Live costs: every VIBEBOX_BILLING_LIVE_INTERVAL (default 15 s) Celery beat sends
`publish_live_costs`, which tells the members who may read an organization's billing what its
running sandboxes have cost so far and cost per hour, as a `billing.cost` event on their activity
feed (apps/sandboxes/events.py `publish_owner`). The dashboard's billing page (/billing/) updates
its numbers from it without a reload.

The event (one per organization with running sandboxes, to each member holding billing.read whose
activity feed is open: who listens is asked first, so an organization nobody watches costs one
query of its member ids and one Redis round trip, no permission lookup and no cost computation):

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
from decimal import Decimal, localcontext

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
    elapsed = costs.micro(now - start)  # integer microseconds: no float on the way
    whole = costs.micro(end - start)
    if elapsed < 3600 * 10**6:
        return Decimal(month_to_date)
    with localcontext(costs.PRECISE):
        return (Decimal(month_to_date) * Decimal(whole) / Decimal(elapsed)).quantize(Decimal("0.01"))


def billing_readers(org, among=None) -> list[int]:
    """The ids of the organization's members who hold billing.read (by role or team); with
    `among`, only those of these user ids (the others' permissions are not looked up)."""
    members = org_selectors.member_list(org=org)
    if among is not None:
        members = members.filter(user_id__in=list(among))
    return [
        membership.user_id
        for membership in members
        if BILLING_READ in org_selectors.permissions_of(user=membership.user, org=org)
    ]


def listening_readers(org) -> list[int]:
    """The billing readers with their activity feed open: who listens is asked first (one Redis
    round trip for all the members), permissions are resolved only for the listeners, so an
    organization nobody watches costs one query and that round trip."""
    member_ids = list(org_selectors.member_list(org=org).values_list("user_id", flat=True))
    listeners = events.listening(member_ids)
    if not listeners:
        return []
    return sorted(billing_readers(org, among=listeners))


def running_costs(org, now: dt.datetime | None = None, *, live=None) -> list[dict]:
    """Each running sandbox of the organization: its cost so far and its current rate per hour,
    all in one pass (costs.sandbox_costs: one engine run grouped by sandbox, rates batched);
    `live`: costs.live_rows(org), computed once here if not given."""
    now = now or timezone.now()
    running = list(
        Sandbox.objects.filter(org=org, status=Status.RUNNING).select_related("template").order_by("created_at")
    )
    computed = costs.sandbox_costs(org, running, now=now, live=live)
    return [
        {
            "sandboxId": sandbox.id,
            "name": sandbox.name,
            "template": sandbox.template.name if sandbox.template_id else "",
            "total": amount(computed[sandbox.pk]["total"]),
            "ratePerHour": amount(computed[sandbox.pk]["ratePerHour"]),
            "currency": computed[sandbox.pk]["currency"],
        }
        for sandbox in running
    ]


def org_snapshot(org, now: dt.datetime | None = None) -> dict:
    """What one `billing.cost` event says about an organization. The live (not rolled-up) rows are
    computed once and serve the sandboxes' costs, their rates and the month to date."""
    now = now or timezone.now()
    live = costs.live_rows(org, now=now)
    sandboxes = running_costs(org, now, live=live)
    to_date = costs.month_to_date(org, now=now, live=live)
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
    readers = listening_readers(org)
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
