"""Writes for billing's plans: an organization's billing account (made on first use) and its plan
changes (billing.manage; each one audited)."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from . import plans
from .models import OrgBilling, PlanAssignment
from .selectors import plan_get

# A change "from now" sent by a client whose clock is a little behind is still "now".
CLOCK_SKEW = timedelta(minutes=5)


def org_billing_get_or_create(*, org) -> OrgBilling:
    billing, _ = OrgBilling.objects.get_or_create(org=org)
    return billing


def plan_change(*, actor: Actor, plan: str, effective_from: datetime | None = None) -> PlanAssignment:
    """Puts the organization on `plan` (a public plan's slug) from `effective_from` (default now;
    never in the past: past usage keeps the plan it was priced with). Changes scheduled after it
    are dropped. A plan in another currency may only start at a month's start (a month is priced
    in one currency)."""
    actor.require("billing.manage")
    now = timezone.now()
    when = effective_from or now
    if when < now - CLOCK_SKEW:
        raise errors.InvalidEffectiveFrom(details={"effectiveFrom": when.isoformat(), "now": now.isoformat()})
    when = max(when, now)
    target = plan_get(slug=plan)
    before = plans.plan_at(actor.org, when)
    if target.currency != before.currency and plans.month_bounds(when)[0] != when:
        raise errors.PlanCurrencyChange(details={"from": before.currency, "to": target.currency})
    with transaction.atomic():
        org_billing_get_or_create(org=actor.org)
        dropped = list(
            PlanAssignment.objects.filter(org=actor.org, effective_from__gte=when).values_list(
                "plan__slug", "effective_from"
            )
        )
        PlanAssignment.objects.filter(org=actor.org, effective_from__gte=when).delete()
        assignment = PlanAssignment.objects.create(
            org=actor.org, plan=target, effective_from=when, created_by=actor.user
        )
        record(
            "billing.plan_changed",
            target=assignment,
            org_id=actor.org.pk,
            target_type="plan_assignment",
            changes={
                "plan": {"from": before.slug, "to": target.slug},
                "effectiveFrom": when.isoformat(),
                "dropped": [{"plan": slug, "effectiveFrom": at.isoformat()} for slug, at in dropped],
            },
        )
    return assignment
