"""Writes for billing's plans: an organization's billing account (made on first use), its plan
changes (billing.manage; each one audited), and the guard that keeps a plan in use priced as it was
(docs/billing.md, "Plans and prices")."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from . import plans
from .models import InvoiceLine, OrgBilling, Plan, PlanAssignment
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
    org_billing_get_or_create(org=actor.org)  # the row locked below: made first, outside the lock
    try:
        with transaction.atomic():
            # One change at a time per organization: the account row is the lock, and what the change
            # depends on (the plan before it, the changes it drops) is read under it.
            OrgBilling.objects.select_for_update().get(org=actor.org)
            assignment = _plan_change_locked(actor, target, when)
    except IntegrityError:
        # Another change at the very same instant (the lock serializes this server's changes; a
        # row written by other means, e.g. the admin, is not behind it).
        raise errors.PlanChangeConflict(details={"effectiveFrom": when.isoformat()}) from None
    return assignment


def _plan_change_locked(actor: Actor, target, when: datetime) -> PlanAssignment:
    """plan_change's work, under the lock on the organization's account row."""
    before = plans.plan_at(actor.org, when)
    if target.currency != before.currency and plans.month_bounds(when)[0] != when:
        raise errors.PlanCurrencyChange(details={"from": before.currency, "to": target.currency})
    dropped = list(
        PlanAssignment.objects.filter(org=actor.org, effective_from__gte=when).values_list(
            "plan__slug", "effective_from"
        )
    )
    PlanAssignment.objects.filter(org=actor.org, effective_from__gte=when).delete()
    assignment = PlanAssignment.objects.create(org=actor.org, plan=target, effective_from=when, created_by=actor.user)
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


# What prices the past: frozen once a plan is in use. Limits and the rest act from now on and stay editable.
FROZEN_FIELDS = ("currency", "monthly_fee")
FROZEN_NOTE = (
    "This plan is in use: its prices, fee and currency are frozen. To change a price, add a new plan and "
    "move organizations to it from a date: the past keeps its prices."
)


def plan_is_default(plan: Plan) -> bool:
    """Whether the plan (as stored) is VIBEBOX_DEFAULT_PLAN: never deleted nor renamed."""
    if plan.pk is None:
        return False
    stored = Plan.objects.filter(pk=plan.pk).values_list("slug", flat=True).first()
    return stored == settings.VIBEBOX_DEFAULT_PLAN


def plan_in_use(plan: Plan) -> bool:
    """A plan prices something once an organization has been assigned it, it is the default plan
    (every organization without an assignment is on it), or an invoice line names it."""
    if plan.pk is None:
        return False
    if plan_is_default(plan) or PlanAssignment.objects.filter(plan_id=plan.pk).exists():
        return True
    stored = Plan.objects.filter(pk=plan.pk).values_list("slug", flat=True).first()
    return InvoiceLine.objects.filter(plan__in={stored, plan.slug}).exists()


def plan_change_check(plan: Plan, *, prices_changed: bool = False) -> None:
    """Refuses (`409 plan_in_use`) a change of a plan in use to what prices the past: its currency,
    fee or prices (`prices_changed`: a price added, changed or removed); and the default plan's
    renaming. Compares `plan` with its stored row; a new plan passes."""
    if plan.pk is None:
        return
    stored = Plan.objects.filter(pk=plan.pk).first()
    if stored is None:
        return
    if stored.slug == settings.VIBEBOX_DEFAULT_PLAN and plan.slug != stored.slug:
        raise errors.PlanInUse(
            "The default plan (VIBEBOX_DEFAULT_PLAN) cannot be renamed.",
            details={"plan": stored.slug, "fields": ["slug"]},
        )
    changed = [field for field in FROZEN_FIELDS if getattr(stored, field) != getattr(plan, field)]
    if prices_changed:
        changed.append("prices")
    if changed and plan_in_use(stored):
        raise errors.PlanInUse(FROZEN_NOTE, details={"plan": stored.slug, "fields": changed})


def plan_save(plan: Plan) -> Plan:
    """Saves a plan (the admin's save) after plan_change_check, in one transaction with the row locked
    (so an assignment made meanwhile cannot slip between the check and the write)."""
    with transaction.atomic():
        if plan.pk is not None:
            Plan.objects.select_for_update().filter(pk=plan.pk).first()
        plan_change_check(plan)
        plan.save()
    return plan


def plan_delete_check(plan: Plan) -> None:
    """The default plan cannot be deleted (every organization without an assignment is on it)."""
    if plan_is_default(plan):
        raise errors.PlanInUse(
            "The default plan (VIBEBOX_DEFAULT_PLAN) cannot be deleted.", details={"plan": plan.slug}
        )
