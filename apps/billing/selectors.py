"""Reads for billing, scoped to the actor's organization and needing billing.read: usage and costs
of a window grouped by sandbox, template, day or resource; the usage export's rows; a sandbox's
cost (another organization's sandbox is a 404); plans and the organization's plan."""

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.orgs.actors import Actor
from apps.sandboxes.models import Sandbox, Status
from vibebox import exceptions as errors

from . import costs, plans
from .models import Plan, PlanAssignment, Resource, UsageRecord
from .resources import CONVERSIONS, RESOURCES

GROUPINGS = ("sandbox", "template", "day", "resource")
# The years a window's ends or a plan change may name (the calendar's ends overflow date arithmetic).
YEARS = (2000, 9000)
EXPORT_FIELDS = [
    ("hour", "hour"),
    ("sandboxId", "sandbox_id"),
    ("template", "template"),
    ("cpuSeconds", "cpu_seconds"),
    ("memoryGibSeconds", "memory_gib_seconds"),
    ("workspaceGibSeconds", "workspace_gib_seconds"),
    ("snapshotGibSeconds", "snapshot_gib_seconds"),
    ("netInBytes", "net_in_bytes"),
    ("netOutBytes", "net_out_bytes"),
    ("executionSeconds", "execution_seconds"),
    ("runningSeconds", "running_seconds"),
    ("pausedSeconds", "paused_seconds"),
    ("stoppedSeconds", "stopped_seconds"),
    ("modelInputTokens", "model_input_tokens"),
    ("modelOutputTokens", "model_output_tokens"),
    ("modelCostUsd", "model_cost_usd"),
]


def window(start: datetime | None, end: datetime | None, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window asked for: default from the current month's start to now; refused when from is
    not before to (invalid_billing_window) or longer than VIBEBOX_BILLING_MAX_WINDOW."""
    end = end or now or timezone.now()
    try:
        start = start or plans.month_bounds(end - timedelta(microseconds=1))[0]
        plans.month_bounds(end)  # the window's months must be computable (not past year 9999)
    except OverflowError:
        raise errors.InvalidBillingWindow(details={"to": end.isoformat()}) from None
    if start >= end:
        raise errors.InvalidBillingWindow(details={"from": start.isoformat(), "to": end.isoformat()})
    longest = timedelta(seconds=settings.VIBEBOX_BILLING_MAX_WINDOW)
    if end - start > longest:
        raise errors.BillingWindowTooLong(details={"maxDays": longest.days})
    return start, end


def _day(row) -> str:
    return row["hour"].date().isoformat()  # hours are UTC


def _key(group_by: str):
    if group_by not in GROUPINGS:
        raise errors.UnknownGroupBy(details={"groupBy": str(group_by)[:40], "allowed": list(GROUPINGS)})
    return {
        "sandbox": lambda row: row["sandbox_id"],
        "template": lambda row: row.get("template") or "",
        "day": _day,
        "resource": lambda row: "",
    }[group_by]


def _labels(org, group_by: str, keys) -> dict[str, str]:
    if group_by == "sandbox":
        return dict(Sandbox.objects.filter(org=org, pk__in=list(keys)).values_list("pk", "name"))
    return {}


MONEY_PLACES = Decimal("0.000001")  # the API's money fields (api/serializers.money: 6 places)


def _shown(amount: Decimal) -> Decimal:
    return Decimal(amount).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def _flatten(group_by: str, groups: dict, labels: dict, value) -> list[dict]:
    """[{key, label, resource, ...value(resource, amount)}] from {group: {resource: amount}}, the
    resource grouping keyed by resource."""
    items = []
    for key in sorted(groups):
        for resource in RESOURCES:
            amount = groups[key].get(resource)
            if not amount:
                continue
            item_key = resource if group_by == "resource" else key
            label = Resource(resource).label if group_by == "resource" else labels.get(key, key)
            items.append({"key": item_key, "label": label, "resource": resource, **value(resource, amount)})
    return items


def usage(*, actor: Actor, start: datetime, end: datetime, group_by: str = "resource") -> dict:
    """Quantities used in [start, end) (hours starting in it, the live hour included), in price
    units, per group and resource."""
    actor.require("billing.read")
    key = _key(group_by)
    totals: dict = defaultdict(lambda: dict.fromkeys(RESOURCES, Decimal(0)))
    for row in costs.usage_rows(actor.org, start, end):
        bucket = totals[key(row)]
        for resource in RESOURCES:
            bucket[resource] += Decimal(row.get(CONVERSIONS[resource].field) or 0)
    groups = {
        group: {resource: CONVERSIONS[resource].to_units(raw) for resource, raw in bucket.items()}
        for group, bucket in totals.items()
    }
    items = _flatten(
        group_by,
        groups,
        _labels(actor.org, group_by, groups),
        lambda resource, quantity: {"quantity": quantity, "unit": CONVERSIONS[resource].unit},
    )
    return {"from": start, "to": end, "groupBy": group_by, "items": items}


def cost_breakdown(
    *, actor: Actor, start: datetime, end: datetime, group_by: str = "resource", now=None, live=None
) -> dict:
    """Money of [start, end) per group and resource (the plan's fee apart), the total and currency,
    and the organization's line items: one engine run."""
    return cost_breakdowns(actor=actor, start=start, end=end, group_bys=[group_by], now=now, live=live)[group_by]


def cost_breakdowns(*, actor: Actor, start: datetime, end: datetime, group_bys, now=None, live=None) -> dict:
    """cost_breakdown for each grouping of `group_bys` ({group_by: breakdown}) from one engine run
    (costs.breakdown): a page showing several groupings prices the window once. `live`:
    costs.live_rows(org), when the caller computed them already."""
    actor.require("billing.read")
    keys = {group_by: _key(group_by) for group_by in group_bys}
    result = costs.breakdown(actor.org, start, end, keys, now=now, live=live)
    return {
        group_by: _breakdown_of(actor, start, end, group_by, result.groups[group_by], result) for group_by in group_bys
    }


def _breakdown_of(actor: Actor, start, end, group_by: str, groups: dict, result) -> dict:
    labels = _labels(actor.org, group_by, groups)
    # Each amount at the places the API answers in (ROUND_HALF_UP), before anything is summed: the
    # groups are their items' sum and the total the fee plus the groups', to the last place shown.
    items = _flatten(group_by, groups, labels, lambda resource, amount: {"amount": _shown(amount)})
    per_group: dict = defaultdict(Decimal)
    for item in items:
        per_group[(item["key"], item["label"])] += item["amount"]
    summary = [
        {"key": key, "label": label, "amount": amount}
        for (key, label), amount in sorted(per_group.items(), key=lambda pair: (-pair[1], pair[0][0]))
    ]
    return {
        "from": start,
        "to": end,
        "groupBy": group_by,
        "currency": result.currency,
        "fee": _shown(result.fee),
        "total": _shown(result.fee) + sum(per_group.values(), Decimal(0)),
        "groups": summary,
        "items": items,
        "lineItems": result.items,
    }


def export_batch(*, org, start: datetime, end: datetime, after: tuple | None, size: int) -> list[dict]:
    """The next `size` usage records of the window after `after` ((hour, id) of the last one
    sent), oldest first: a keyset page, so an export never holds a cursor or the whole window."""
    records = UsageRecord.objects.filter(org=org, hour__gte=start, hour__lt=end)
    if after is not None:
        hour, pk = after
        records = records.filter(Q(hour__gt=hour) | Q(hour=hour, pk__gt=pk))
    return list(records.order_by("hour", "pk").values("pk", *[field for _, field in EXPORT_FIELDS])[:size])


def export_check(*, actor: Actor) -> None:
    actor.require("billing.read")


def sandbox_for_cost(*, actor: Actor, ref: str) -> Sandbox:
    """The organization's sandbox by id (`sbx_…`, destroyed ones too) or by name (live ones: the
    actor's own first, else the only one by that name); another organization's is a 404. Needs
    billing.read (not sandboxes.read: the billing role sees costs)."""
    qs = Sandbox.objects.filter(org=actor.org).select_related("org", "template")
    if ref.startswith("sbx_"):
        sandbox = qs.filter(pk=ref).first()
    else:
        named = list(qs.exclude(status=Status.DESTROYED).filter(name=ref)[:20])
        own = [item for item in named if item.owner_id == actor.user.pk]
        sandbox = own[0] if own else (named[0] if len(named) == 1 else None)
        if sandbox is None and len(named) > 1:
            raise errors.SandboxNameAmbiguous(details={"name": ref, "sandboxes": sorted(item.pk for item in named)})
    if sandbox is None:
        raise errors.SandboxNotFound(details={"sandbox": ref[:64]})
    actor.require("billing.read")
    return sandbox


def sandbox_cost(*, actor: Actor, ref: str) -> dict:
    sandbox = sandbox_for_cost(actor=actor, ref=ref)
    return {"sandboxId": sandbox.pk, "since": sandbox.created_at, **costs.sandbox_cost(sandbox)}


def plan_list():
    """The plans offered to organizations, cheapest first."""
    return Plan.objects.filter(public=True).prefetch_related("prices").order_by("monthly_fee", "slug")


def plan_get(*, slug: str, public_only: bool = True) -> Plan:
    plan = Plan.objects.filter(slug=slug, **({"public": True} if public_only else {})).first()
    if plan is None:
        raise errors.PlanNotFound(details={"plan": str(slug)[:40]})
    return plan


def org_plan(*, actor: Actor, now: datetime | None = None, month_to_date: Decimal | None = None) -> dict:
    """The organization's plan now, since when, the changes scheduled, its limits and the month to
    date (`month_to_date`: when the caller priced the month already)."""
    actor.require("billing.read")
    now = now or timezone.now()
    current = PlanAssignment.objects.filter(org=actor.org, effective_from__lte=now).order_by("-effective_from").first()
    scheduled = PlanAssignment.objects.filter(org=actor.org, effective_from__gt=now).select_related("plan")
    plan = plans.plan_at(actor.org, now)
    month_start, month_end = plans.month_bounds(now)
    return {
        "plan": plan,
        "effectiveFrom": current.effective_from if current else None,
        "scheduled": [{"plan": item.plan.slug, "effectiveFrom": item.effective_from} for item in scheduled],
        "limits": plans.limits(actor.org, now),
        "monthToDate": costs.month_to_date(actor.org, now) if month_to_date is None else month_to_date,
        "currency": plan.currency,
        "periodStart": month_start,
        "periodEnd": month_end,
    }
