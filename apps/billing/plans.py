"""Which plan an organization is on, when, and its effective limits (docs/billing.md, "Plans and
prices"). Reads only; changing the plan is services.plan_change."""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import Limits, OrgBilling, Plan, PlanAssignment


def default_plan() -> Plan:
    """The plan of an organization with no assignment: VIBEBOX_DEFAULT_PLAN (default "free")."""
    return Plan.objects.get(slug=settings.VIBEBOX_DEFAULT_PLAN)


def plan_at(org, at: datetime) -> Plan:
    """The plan valid at `at`: the latest assignment that started at or before it, else the default."""
    assignment = (
        PlanAssignment.objects.filter(org=org, effective_from__lte=at)
        .select_related("plan")
        .order_by("-effective_from")
        .first()
    )
    return assignment.plan if assignment else default_plan()


def segments(org, start: datetime, end: datetime) -> list[tuple[Plan, datetime, datetime]]:
    """[start, end) cut where the plan changes: [(plan, seg_start, seg_end), ...] in time order,
    covering the window without gaps. Consecutive pieces on the same plan are merged."""
    if end <= start:
        return []
    changes = list(
        PlanAssignment.objects.filter(org=org, effective_from__gt=start, effective_from__lt=end)
        .select_related("plan")
        .order_by("effective_from")
    )
    result: list[tuple[Plan, datetime, datetime]] = []
    plan, since = plan_at(org, start), start
    for change in changes:
        if change.plan_id != plan.pk:
            result.append((plan, since, change.effective_from))
            plan, since = change.plan, change.effective_from
    result.append((plan, since, end))
    return result


def month_bounds(at: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month holding `at`: (its first instant, the next month's first instant)."""
    at = at.astimezone(UTC) if timezone.is_aware(at) else at.replace(tzinfo=UTC)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def months(start: datetime, end: datetime) -> list[tuple[datetime, datetime, datetime, datetime]]:
    """[start, end) cut at month boundaries: [(piece_start, piece_end, month_start, month_end)]."""
    pieces = []
    cursor = start
    while cursor < end:
        month_start, month_end = month_bounds(cursor)
        piece_end = min(end, month_end)
        pieces.append((cursor, piece_end, month_start, month_end))
        cursor = piece_end
    return pieces


def limits(org, at: datetime | None = None) -> dict:
    """{limit field: value or None (no limit)}: the organization's override (OrgBilling) where set,
    else the plan's valid at `at` (now)."""
    plan = plan_at(org, at or timezone.now())
    override = OrgBilling.objects.filter(org=org).first()
    result = {}
    for field in Limits.LIMIT_FIELDS:
        value = getattr(override, field, None) if override else None
        result[field] = value if value is not None else getattr(plan, field)
    return result


def public_plans():
    return Plan.objects.filter(Q(public=True)).prefetch_related("prices")
