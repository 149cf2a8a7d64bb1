"""The cost engine: usage (UsageRecord rows, plus the current hour's live part) priced with the plan
valid at the time (docs/billing.md, "Plans and prices").

- A month is cut where the plan changes ("segments"). A segment's allowance of each resource is the
  plan's included amount prorated: included * segment length / month length; its fee likewise.
- Usage consumes the segment's allowance in time order, hour by hour: an hour costs what it adds
  to max(0, used since the segment's start - allowance) * unit price. So a window's cost is the
  difference of the running totals at its ends: days add up to the month, the month-to-date is
  free until the allowance is used, and a full month is max(0, used - included) * price.
- Within one hour the organization's charge is shared by the hour's rows (sandboxes) in proportion
  to what each used, so sandboxes, templates and days add up to the organization's total; the fee
  is the organization's alone (never part of a sandbox's cost) and accrues evenly over time.
- An hour's usage belongs to the segment its hour starts in (a plan changed at 14:30 prices the
  14:00 hour with the old plan); a window takes the hours that start inside it.

Money is Decimal throughout and never rounded here (amounts are exact, or quotients at the decimal
context's 28 digits); rounding to cents happens where a figure is shown or invoiced.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Context, Decimal, localcontext
from itertools import groupby
from operator import itemgetter

from django.utils import timezone

from vibebox import exceptions as errors

from . import plans
from .models import Resource, UsageRecord
from .resources import CONVERSIONS, RESOURCES, USAGE_FIELDS

ZERO = Decimal(0)
# Sums of money are exact at this precision (amounts have 6 decimals, prices 6, usage < 10^18).
PRECISE = Context(prec=60)


@dataclass
class LineItem:
    resource: str  # a Resource value; "" for the plan's fee
    description: str
    plan: str  # the plan's slug
    quantity: Decimal  # in price units (1 for the fee: the prorated month is in `amount`)
    unit: str
    unit_price: Decimal
    included: Decimal  # the allowance for this piece (the part's share of it for a sandbox/template)
    amount: Decimal  # unrounded
    currency: str
    start: datetime
    end: datetime


@dataclass
class Piece:
    """The part of a window on one plan segment (inside one month)."""

    plan: object
    prices: dict  # resource -> PlanPrice
    segment_start: datetime  # the segment's: where its allowance starts being used
    start: datetime  # the window's part
    end: datetime
    fee_fraction: Decimal  # of the month: the window's part
    allowance_fraction: Decimal  # of the month: the whole segment


def _micro(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def pieces(org, start: datetime, end: datetime) -> list[Piece]:
    with localcontext(PRECISE):
        return _pieces(org, start, end)


def _pieces(org, start: datetime, end: datetime) -> list[Piece]:
    result = []
    for window_start, window_end, month_start, month_end in plans.months(start, end):
        month = Decimal(_micro(month_end - month_start))
        for plan, seg_start, seg_end in plans.segments(org, month_start, month_end):
            part_start, part_end = max(seg_start, window_start), min(seg_end, window_end)
            if part_start >= part_end:
                continue
            result.append(
                Piece(
                    plan=plan,
                    prices={price.resource: price for price in plan.prices.all()},
                    segment_start=seg_start,
                    start=part_start,
                    end=part_end,
                    fee_fraction=Decimal(_micro(part_end - part_start)) / month,
                    allowance_fraction=Decimal(_micro(seg_end - seg_start)) / month,
                )
            )
    return result


def floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def live_rows(org, *, sandbox=None) -> list[dict]:
    """The current hour's usage not rolled up yet, as UsageRecord-like dicts (sandbox_id, template,
    hour, and the usage fields).

    LEAD: WIRE HERE. Until apps.billing.metering lands this returns nothing, so costs are as of the
    last rollup. Wire it as: for each of the org's running or paused sandboxes (or the one given),
    `apps.billing.metering.live_usage(sandbox)` -> a dict of UsageRecord field -> amount for the
    current hour, plus "sandbox_id", "template" and "hour" (floor_hour(now)).
    """
    return []


def usage_rows(org, start: datetime, end: datetime, *, now=None):
    """The organization's UsageRecord rows (dicts) whose hour starts in [start, end), in time order,
    and the live part when the current hour is in the window. Iterated, never loaded whole."""
    records = UsageRecord.objects.filter(org=org, hour__gte=start, hour__lt=end).order_by("hour", "sandbox_id")
    yield from records.values("sandbox_id", "template", "hour", *USAGE_FIELDS).iterator(chunk_size=2000)
    current = floor_hour(now or timezone.now())
    if start <= current < end:
        for row in live_rows(org):
            yield {**row, "hour": current}


@dataclass
class Charge:
    """One usage row's part of a resource in a piece. Kept in the record's own units (seconds,
    bytes) so that sums stay exact; converted to price units once, when summed (`units`)."""

    raw: Decimal  # used, in the record's unit
    raw_included: Decimal  # the allowance it consumed, in the record's unit
    scaled: Decimal  # (raw - raw_included) * unit price: money times the unit's divisor


def units(resource: str, raw: Decimal, raw_included: Decimal, scaled: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, included, amount) in price units and money, from sums of Charges."""
    divisor = CONVERSIONS[resource].divisor
    with localcontext(PRECISE):
        return raw / divisor, raw_included / divisor, scaled / divisor


def charges(org, start: datetime, end: datetime, *, now=None):
    """Yields (piece, row, {resource: Charge}) for every usage row of the organization in the
    window (resources it used that the plan prices), hour after hour; see the module's doc."""
    yield from _charges(org, pieces(org, start, end), now=now)


def _share(part: Decimal, whole: Decimal, amount: Decimal) -> Decimal:
    if amount == ZERO or part == whole:
        return amount if part == whole else ZERO
    return amount * part / whole


def _charges(org, window: list[Piece], *, now=None):
    for piece in window:
        used = dict.fromkeys(piece.prices, ZERO)  # since the segment's start, in the record's unit
        with localcontext(PRECISE):
            allowance = {
                resource: price.included * CONVERSIONS[resource].divisor * piece.allowance_fraction
                for resource, price in piece.prices.items()
            }
        for hour, group in groupby(usage_rows(org, piece.segment_start, piece.end, now=now), key=itemgetter("hour")):
            rows = list(group)
            counted = hour >= piece.start
            for resource, price in piece.prices.items():
                field = CONVERSIONS[resource].field
                amounts = [Decimal(row.get(field) or 0) for row in rows]
                with localcontext(PRECISE):
                    hour_used = sum(amounts, ZERO)
                    before, after = used[resource], used[resource] + hour_used
                    used[resource] = after
                    if not counted or hour_used == ZERO:
                        continue
                    limit = allowance[resource]
                    included = min(after, limit) - min(before, limit)
                    for row, amount in zip(rows, amounts, strict=True):
                        if amount:
                            row_included = _share(amount, hour_used, included)
                            row.setdefault("_charges", {})[resource] = Charge(
                                amount, row_included, (amount - row_included) * price.unit_price
                            )
            if counted:
                for row in rows:
                    yield piece, row, row.pop("_charges", {})


def _product(a: Decimal, b: Decimal) -> Decimal:
    with localcontext(PRECISE):
        return a * b


def _fee_item(piece: Piece) -> LineItem | None:
    if piece.plan.monthly_fee == ZERO:
        return None
    return LineItem(
        resource="",
        description=f"{piece.plan.name} plan fee, {piece.start:%Y-%m-%d %H:%M} to {piece.end:%Y-%m-%d %H:%M} UTC",
        plan=piece.plan.slug,
        quantity=piece.fee_fraction,
        unit="month",
        unit_price=piece.plan.monthly_fee,
        included=ZERO,
        amount=_product(piece.plan.monthly_fee, piece.fee_fraction),
        currency=piece.plan.currency,
        start=piece.start,
        end=piece.end,
    )


def line_items(org, start: datetime, end: datetime, *, sandbox=None, template=None, now=None) -> list[LineItem]:
    """What [start, end) costs `org`: per plan segment, the fee (not for a sandbox or template) and a
    line per priced resource used (quantity, allowance consumed, amount). With `sandbox` (a Sandbox
    or its id) or `template` (a name): that part's share."""
    sandbox_id = getattr(sandbox, "pk", sandbox)
    part = sandbox is not None or template is not None
    window = pieces(org, start, end)
    totals: list[dict] = [{} for _ in window]
    index = {id(piece): number for number, piece in enumerate(window)}
    for piece, row, row_charges in _charges(org, window, now=now):
        if sandbox_id is not None and row["sandbox_id"] != sandbox_id:
            continue
        if template is not None and row.get("template") != template:
            continue
        bucket = totals[index[id(piece)]]
        with localcontext(PRECISE):
            for resource, charge in row_charges.items():
                raw, included, scaled = bucket.get(resource, (ZERO, ZERO, ZERO))
                bucket[resource] = (raw + charge.raw, included + charge.raw_included, scaled + charge.scaled)
    items: list[LineItem] = []
    for piece, bucket in zip(window, totals, strict=True):
        if not part and (fee := _fee_item(piece)):
            items.append(fee)
        for resource in RESOURCES:
            if resource not in bucket:
                continue
            quantity, included, amount = units(resource, *bucket[resource])
            items.append(
                LineItem(
                    resource=resource,
                    description=f"{piece.plan.name}: {Resource(resource).label}",
                    plan=piece.plan.slug,
                    quantity=quantity,
                    unit=CONVERSIONS[resource].unit,
                    unit_price=piece.prices[resource].unit_price,
                    included=included,
                    amount=amount,
                    currency=piece.plan.currency,
                    start=piece.start,
                    end=piece.end,
                )
            )
    return items


def currency_of(items: list[LineItem], org=None, at: datetime | None = None) -> str:
    currencies = {item.currency for item in items}
    if len(currencies) > 1:
        raise errors.MixedCurrencies(details={"currencies": sorted(currencies)})
    if currencies:
        return currencies.pop()
    return plans.plan_at(org, at or timezone.now()).currency if org is not None else "USD"


def total(org, start: datetime, end: datetime, *, now=None) -> Decimal:
    """The organization's cost of [start, end), fee included, unrounded."""
    items = line_items(org, start, end, now=now)
    currency_of(items)
    return _sum(item.amount for item in items)


def _sum(amounts) -> Decimal:
    with localcontext(PRECISE):
        return sum(amounts, ZERO)


def month_to_date(org, now: datetime | None = None) -> Decimal:
    """The current month's cost up to now, the live (not yet rolled-up) hour included."""
    now = now or timezone.now()
    month_start, _ = plans.month_bounds(now)
    return total(org, month_start, now, now=now)


def grouped(org, start: datetime, end: datetime, key, *, now=None) -> tuple[dict, Decimal, str]:
    """Costs of [start, end) per group: `key(row)` names a usage row's group (its sandbox id,
    template, day...). Returns ({group: {resource: amount}}, fee, currency); the groups add up to
    the total less the fee."""
    groups: dict = defaultdict(lambda: dict.fromkeys(RESOURCES, ZERO))
    window = pieces(org, start, end)
    fees = [fee for piece in window if (fee := _fee_item(piece))]
    currencies = {piece.plan.currency for piece in window}
    for _piece, row, row_charges in _charges(org, window, now=now):
        bucket = groups[key(row)]
        with localcontext(PRECISE):
            for resource, charge in row_charges.items():
                bucket[resource] += charge.scaled
    for bucket in groups.values():
        for resource in RESOURCES:
            bucket[resource] = units(resource, ZERO, ZERO, bucket[resource])[2]
    if len(currencies) > 1:
        raise errors.MixedCurrencies(details={"currencies": sorted(currencies)})
    currency = currencies.pop() if currencies else plans.plan_at(org, start).currency
    return dict(groups), _sum(fee.amount for fee in fees), currency


def rate_per_hour(sandbox, *, now=None) -> Decimal:
    """The sandbox's current rate: its last metered hour (the live one, else the latest record of
    the past two hours) at the plan's unit prices, allowances ignored, scaled to a full hour."""
    now = now or timezone.now()
    if sandbox.destroyed_at is not None:
        return ZERO
    rows = [row for row in live_rows(sandbox.org, sandbox=sandbox) if row]
    elapsed = Decimal(_micro(now - floor_hour(now))) / Decimal(1_000_000)
    covered = elapsed if rows and elapsed else None
    if not rows:
        record = (
            UsageRecord.objects.filter(sandbox=sandbox, hour__gte=floor_hour(now) - timedelta(hours=2))
            .order_by("-hour")
            .values("hour", "running_seconds", "paused_seconds", "stopped_seconds", *USAGE_FIELDS)
            .first()
        )
        rows = [record] if record else []
    if not rows:
        return ZERO
    row = rows[0]
    if covered is None:
        covered = sum(Decimal(row.get(f) or 0) for f in ("running_seconds", "paused_seconds", "stopped_seconds"))
    if not covered:
        covered = Decimal(3600)
    plan = plans.plan_at(sandbox.org, now)
    with localcontext(PRECISE):
        scaled = ZERO
        for price in plan.prices.all():
            conversion = CONVERSIONS[price.resource]
            scaled += Decimal(row.get(conversion.field) or 0) * price.unit_price / conversion.divisor
        return scaled * Decimal(3600) / covered


def sandbox_cost(sandbox, *, now=None) -> dict:
    """{"total": its cost since it was created (its share, fee excluded), "ratePerHour", "currency"}."""
    now = now or timezone.now()
    start = floor_hour(sandbox.created_at)
    end = floor_hour(sandbox.destroyed_at) + timedelta(hours=1) if sandbox.destroyed_at else now
    month_start, _ = plans.month_bounds(start)  # whole months: the allowance is the organization's
    items = line_items(sandbox.org, month_start, min(end, now), sandbox=sandbox, now=now)
    return {
        "total": _sum(item.amount for item in items),
        "ratePerHour": rate_per_hour(sandbox, now=now),
        "currency": currency_of(items, sandbox.org, now),
    }
