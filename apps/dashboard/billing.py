"""The billing page (`/billing/`): the organization's month to date and its forecast, the cost per
sandbox, per template, per resource and per day (an inline SVG chart), model spend, the running
sandboxes' cost so far (updated live from the activity feed's `billing.cost` events:
apps/billing/live.py), the plan with its prices and quotas, and the invoices with their PDFs.

Reading it needs the billing.read permission (a 403 page naming it otherwise), as for the API;
the numbers are the API's (apps/billing/selectors.py over the cost engine, apps/billing/costs.py),
never computed here.
"""

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.billing import costs, live
from apps.billing import selectors as billing_selectors
from apps.billing.models import Invoice, Resource, UsageRecord
from apps.sandboxes.models import Sandbox

from .orgs import _actor

BILLING_READ = "billing.read"
MICRO = Decimal("0.000001")
INVOICES_SHOWN = 24
BREAKDOWN_ROWS = 50  # sandboxes shown by cost; the rest are summed in one row
CHART = {"width": 720, "height": 180, "left": 48, "bottom": 22, "top": 8}
LIMIT_LABELS = {
    "max_running_sandboxes": "Running sandboxes at once",
    "max_vcpus": "vCPUs of running sandboxes",
    "max_memory_bytes": "Memory of running sandboxes",
    "max_storage_bytes": "Workspace storage",
    "max_snapshots": "Snapshots",
    "execution_minutes_per_month": "Execution minutes a month",
    "model_spend_per_month": "Model spend a month",
    "monthly_budget": "Monthly budget",
}


def plain(value) -> str:
    """A price as typed: 0.05, not 0.050000 nor 5E-2."""
    return format(Decimal(value).normalize(), "f")


def _prices(plan) -> list[dict]:
    return [
        {"resource": price.resource, "label": price.get_resource_display(), "unit_price": plain(price.unit_price),
         "included": plain(price.included)}
        for price in plan.prices.all()
    ]  # fmt: skip


def _groups(actor, start, now, group_by: str) -> list[dict]:
    """The month's usage cost per group, most expensive first: the API's `GET /billing/costs`
    (billing selectors' cost_breakdown), amounts to the micro-unit."""
    breakdown = billing_selectors.cost_breakdown(actor=actor, start=start, end=now, group_by=group_by)
    return [{**group, "amount": group["amount"].quantize(MICRO)} for group in breakdown["groups"]]


def by_sandbox(actor, start, now) -> list[dict]:
    rows = _groups(actor, start, now, "sandbox")
    templates = dict(
        Sandbox.objects.filter(org=actor.org, pk__in=[row["key"] for row in rows]).values_list("pk", "template__name")
    )
    return [{"id": row["key"], "name": row["label"], "template": templates.get(row["key"], ""), **row} for row in rows]


def by_template(actor, start, now) -> list[dict]:
    return [
        {"template": row["key"] or "(none)", "amount": row["amount"]} for row in _groups(actor, start, now, "template")
    ]


def by_day(actor, start, now) -> list[dict]:
    """Each UTC day of the month so far with its usage cost (the plan's fee left out)."""
    amounts = {row["key"]: row["amount"] for row in _groups(actor, start, now, "day")}
    days = []
    day = start.date()
    while day <= now.astimezone(dt.UTC).date():
        days.append({"day": day, "amount": amounts.get(day.isoformat(), Decimal(0))})
        day += dt.timedelta(days=1)
    return days


def chart(days: list[dict], slots: int = 31) -> dict:
    """Bar geometry for the inline SVG chart of the daily costs (no script, no CDN); `slots`: the
    month's days, so the bars fill the chart as the month goes."""
    width, height = CHART["width"], CHART["height"]
    left, bottom, top = CHART["left"], CHART["bottom"], CHART["top"]
    inner = height - bottom - top
    peak = max((row["amount"] for row in days), default=Decimal(0))
    slot = (width - left) / max(len(days), slots, 1)
    bars = []
    for index, row in enumerate(days):
        bar = float(row["amount"] / peak) * inner if peak > 0 else 0.0
        bars.append(
            {
                "x": round(left + index * slot + slot * 0.15, 2),
                "y": round(top + inner - bar, 2),
                "width": round(slot * 0.7, 2),
                "height": round(bar, 2),
                "day": row["day"],
                "amount": row["amount"],
                "label": index == 0 or row["day"].day % 5 == 0,
                "label_x": round(left + index * slot + slot / 2, 2),
            }
        )
    return {**CHART, "bars": bars, "peak": peak, "baseline": top + inner, "label_y": height - 6}


def model_spend(org, start, end, items) -> dict:
    """What the plan charges for the model gateway this month, with the tokens and the gateway's
    own USD figure (the UsageRecords' model fields, summed in the database)."""
    totals = UsageRecord.objects.filter(org=org, hour__gte=start, hour__lt=end).aggregate(
        input_tokens=Sum("model_input_tokens"), output_tokens=Sum("model_output_tokens"), usd=Sum("model_cost_usd")
    )
    charged = sum((Decimal(i.amount) for i in items if i.resource == Resource.MODEL), Decimal(0))
    return {
        "charged": charged,
        "gateway_usd": totals["usd"] or Decimal(0),
        "input_tokens": totals["input_tokens"] or 0,
        "output_tokens": totals["output_tokens"] or 0,
    }


@login_required
@require_GET
def billing_page(request):
    actor = _actor(request, BILLING_READ)
    org = actor.org
    now = timezone.now()
    account = billing_selectors.org_plan(actor=actor, now=now)
    plan, start, to_date = account["plan"], account["periodStart"], account["monthToDate"]
    items = costs.line_items(org, start, now, now=now)
    for item in items:
        item.unit_price_text = plain(item.unit_price)
    sandboxes = by_sandbox(actor, start, now)
    days = by_day(actor, start, now)
    running = live.running_costs(org)
    context = {
        "org": org,
        "plan": plan,
        "currency": account["currency"],
        "prices": _prices(plan),
        "limits": [
            {"field": field, "label": label, "value": account["limits"].get(field)}
            for field, label in LIMIT_LABELS.items()
        ],
        "period_start": start,
        "period_end": account["periodEnd"],
        "now": now,
        "month_to_date": to_date,
        "forecast": live.forecast(to_date, now),
        "items": items,
        "by_sandbox": sandboxes[:BREAKDOWN_ROWS],
        "more_sandboxes": sandboxes[BREAKDOWN_ROWS:],
        "more_amount": sum((row["amount"] for row in sandboxes[BREAKDOWN_ROWS:]), Decimal(0)),
        "by_template": by_template(actor, start, now),
        "days": days,
        "chart": chart(days, (account["periodEnd"] - start).days),
        "model": model_spend(org, start, now, items),
        "running": running,
        "running_rate": sum((Decimal(row["ratePerHour"]) for row in running), Decimal(0)),
        "invoices": list(Invoice.objects.filter(org=org).order_by("-period_start")[:INVOICES_SHOWN]),
        "live_interval": int(settings.VIBEBOX_BILLING_LIVE_INTERVAL),
        "nav": "billing",
    }
    return render(request, "dashboard/billing.html", context)
