"""Quotas and budgets that hold (docs/billing.md, "Quotas and budgets").

An organization's limits are its plan's, or its OrgBilling override where set (plans.limits; null:
no limit). They are asked at every piece of new work: the sandboxes app sends
signals.work_requested at create, start, resume, exec, snapshot, and the agents app at a Claude ask
(receivers.py calls `check`); a refusal is 402 quota_exceeded with details {quota, limit, used,
requested} and nothing is done. Creates, starts, resumes and snapshots ask inside a transaction
holding the organization's row lock (sandboxes.quotas.lock_org), so concurrent requests cannot all
slip under a limit.

Capacity quotas (what is held now): running sandboxes (creating, starting or running), their vCPUs
and memory, storage (the disk sizes of the organization's live sandboxes: a sandbox without a disk
size counts nothing), snapshots. Monthly quotas (this UTC calendar month): execution minutes (the
durations of the organization's commands, code runs and processes, a running one up to now),
model spend (the gateway's cost of its requests; requests paid with the caller's own Anthropic key
are not counted), and the monthly budget (costs.month_to_date: everything the month has cost so
far, live usage included).

Thresholds: at 80 % and 100 % of each monthly quota, a Notice row (unique per organization,
month, quota and percent: once), then signals.threshold_reached (the webhooks app sends
billing.threshold_reached) and an email to the organization's members who hold billing.manage
(owners, the billing role) and its billing email. Checked by the beat task (tasks.py,
`check_all`, every VIBEBOX_METER_INTERVAL) and at every request for work. A refused create rolls
its transaction back, notice included: the next beat pass writes it.

Budget exhausted (month to date >= monthly budget): new work is refused, and `enforce_budget` (the
beat task) pauses the organization's running sandboxes (the sandboxes' pause service: nothing is
destroyed; `sandbox.paused` with data.reason "budget") and sets OrgBilling.budget_paused_at. When
the budget is raised or a new month begins, the mark is cleared and the user resumes them (nothing
resumes by itself). A frozen payment state (dunning) refuses new work too.
"""

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.agents.models import ModelUsage
from apps.audit.services import record
from apps.orgs import selectors as org_selectors
from apps.orgs.branding import brand_for
from apps.orgs.models import Organization
from apps.sandboxes import states
from apps.sandboxes.models import Execution, Sandbox, Snapshot, Status
from apps.sandboxes.services.lifecycle import sandbox_pause
from vibebox import exceptions as errors
from vibebox.units import format_size

from . import costs, plans, signals
from .models import Limits, Notice, OrgBilling, PaymentState, Plan, UsageRecord

logger = logging.getLogger(__name__)

# The statuses that hold a running sandbox's share of CPU and memory (a create or start in flight too).
RUNNING = [Status.CREATING, Status.STARTING, Status.RUNNING]
MONTHLY = ("execution_minutes_per_month", "model_spend_per_month", "monthly_budget")
MONEY = {"model_spend_per_month", "monthly_budget"}
SIZES = {"max_memory_bytes", "max_storage_bytes"}
THRESHOLDS = (80, 100)
BUDGET_NOTE = "paused: the organization's monthly budget is used up"
CENT = Decimal("0.01")


@dataclass
class Request:
    """What a piece of work adds (signals.work_requested's arguments)."""

    action: str
    running: int = 0
    cpu: float = 0
    memory: int = 0
    disk: int = 0
    snapshots: int = 0
    sandbox: Sandbox | None = None

    def quotas(self) -> dict[str, object]:
        """{quota: what this work adds to it (None: a monthly amount, not known beforehand)}."""
        asked: dict[str, object] = {}
        if self.running:
            asked.update(max_running_sandboxes=self.running, max_vcpus=self.cpu, max_memory_bytes=self.memory)
        if self.disk:
            asked["max_storage_bytes"] = self.disk
        if self.snapshots:
            asked["max_snapshots"] = self.snapshots
        if self.action in ("exec", "ask"):
            asked["execution_minutes_per_month"] = None
        if self.action in ("ask", "model"):  # "model": a request through the gateway
            asked["model_spend_per_month"] = None
        asked["monthly_budget"] = None  # every piece of work
        return asked


def limits_of(org, now: datetime) -> dict:
    """plans.limits; with no plan to fall back on (VIBEBOX_DEFAULT_PLAN names no plan: deleted, or
    a test database flushed of the seeded ones), the organization's overrides alone, logged: a
    missing plan must not stop every sandbox."""
    try:
        return plans.limits(org, now)
    except (Plan.DoesNotExist, errors.BillingNotConfigured):
        logger.warning("no plan for %s (VIBEBOX_DEFAULT_PLAN missing?): only its overrides apply", org.pk)
        account = OrgBilling.objects.filter(org=org).first()
        return {field: getattr(account, field, None) for field in Limits.LIMIT_FIELDS}


# ---- what is used ----


def _running(org_id, exclude=None):
    rows = Sandbox.objects.filter(org_id=org_id, status__in=RUNNING)
    return rows.exclude(pk=exclude.pk) if exclude is not None else rows


def spent_key(org, now: datetime) -> str:
    return f"billing:month-to-date:{org.pk}:{plans.month_bounds(now)[0]:%Y-%m}"


def month_spent(org, now: datetime) -> Decimal:
    """The month to date as the request path reads it: cached per organization and month for
    VIBEBOX_METER_INTERVAL, and refreshed by the beat's pass (enforce_budget), so a command pays one
    cache read, not a pass over the month's usage (measured: 20 queries with 1 sandbox, 180 with
    21). The budget may lag by one interval; the beat's pass enforces it then."""
    key = spent_key(org, now)
    value = cache.get(key)
    if value is None:
        value = costs.month_to_date(org, now=now)
        cache.set(key, str(value), timeout=settings.VIBEBOX_METER_INTERVAL)
    return Decimal(value)


def used(org, quota: str, *, now: datetime | None = None, exclude: Sandbox | None = None, cached: bool = False):
    """How much of `quota` the organization uses now (a monthly quota: this month so far).
    `exclude`: a sandbox whose own share is being asked for; `cached`: the budget's month to date
    may come from the cache (month_spent)."""
    now = now or timezone.now()
    org_id = org.pk
    if quota == "max_running_sandboxes":
        return _running(org_id, exclude).count()
    if quota == "max_vcpus":
        return round(_running(org_id, exclude).aggregate(total=Sum("cpu"))["total"] or 0, 4)
    if quota == "max_memory_bytes":
        return _running(org_id, exclude).aggregate(total=Sum("memory"))["total"] or 0
    if quota == "max_storage_bytes":
        live = Sandbox.objects.filter(org_id=org_id, status__in=states.ALIVE)
        if exclude is not None:
            live = live.exclude(pk=exclude.pk)
        return live.aggregate(total=Sum("disk"))["total"] or 0
    if quota == "max_snapshots":
        return Snapshot.objects.filter(org_id=org_id).count()
    start, _ = plans.month_bounds(now)
    if quota == "execution_minutes_per_month":
        return execution_minutes(org_id, start, now)
    if quota == "model_spend_per_month":
        spent = ModelUsage.objects.filter(sandbox__org_id=org_id, created_at__gte=start, own_key=False).aggregate(
            total=Sum("cost_usd")
        )["total"]
        return Decimal(spent or 0)
    if quota == "monthly_budget":
        try:
            return month_spent(org, now) if cached else costs.month_to_date(org, now=now)
        except errors.MixedCurrencies:  # plans in two currencies this month: no one sum to compare
            logger.warning("budget of %s not checked: the month spans plans in two currencies", org.pk)
            return Decimal(0)
        except (Plan.DoesNotExist, errors.BillingNotConfigured):  # no plan (see limits_of): nothing costs
            logger.warning("budget of %s not measured: no plan (VIBEBOX_DEFAULT_PLAN missing?)", org.pk)
            return Decimal(0)
    raise ValueError(f"unknown quota {quota!r}")


def execution_minutes(org_id, start: datetime, now: datetime) -> Decimal:
    """Minutes of the organization's executions started since `start` (one still running: up to now)."""
    executions = Execution.objects.filter(sandbox__org_id=org_id, started_at__gte=start)
    finished = executions.filter(finished_at__isnull=False).aggregate(
        ms=Sum("duration_ms"), count=Count("pk", filter=Q(duration_ms__isnull=True))
    )
    ms = Decimal(finished["ms"] or 0)
    if finished["count"]:  # finished without a duration (an error): their span
        for started, ended in executions.filter(finished_at__isnull=False, duration_ms__isnull=True).values_list(
            "started_at", "finished_at"
        ):
            ms += Decimal(max(0, int((ended - started).total_seconds() * 1000)))
    for started in executions.filter(finished_at__isnull=True).values_list("started_at", flat=True):
        ms += Decimal(max(0, int((now - started).total_seconds() * 1000)))
    return (ms / Decimal(60000)).quantize(Decimal("0.0001"))


# ---- shown ----


def as_json(quota: str, value):
    """A limit or amount as the API shows it: money as a string with cents, minutes and vCPUs as
    numbers, counts and bytes as integers."""
    if value is None:
        return None
    if quota in MONEY:
        return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))
    if quota in ("max_vcpus", "execution_minutes_per_month"):
        return float(round(Decimal(str(value)), 4))
    return int(value)


def _show(quota: str, value) -> str:
    if quota in SIZES:
        return format_size(int(value))
    if quota in MONEY:
        return as_json(quota, value)
    return f"{float(value):g}"


def percent(used_amount, limit) -> float | None:
    if limit is None:
        return None
    if not limit:
        return 100.0 if used_amount else 0.0
    return float(round(Decimal(str(used_amount)) * 100 / Decimal(str(limit)), 1))


def refuse(quota: str, limit, used_amount, requested) -> None:
    asked = f", {_show(quota, requested)} more asked for" if requested is not None else ""
    raise errors.QuotaExceeded(
        f"Quota exceeded for {quota}: {_show(quota, used_amount)} of {_show(quota, limit)} in use{asked}.",
        details={
            "quota": quota,
            "resource": quota,  # the old name of `quota` (one release)
            "limit": as_json(quota, limit),
            "used": as_json(quota, used_amount),
            "requested": as_json(quota, requested),
        },
    )


# ---- the check at each request for work ----


def check(org, request: Request, *, now: datetime | None = None) -> None:
    """Refuses (402 quota_exceeded) work that would go past one of the organization's limits, or
    any work while its payment state is frozen. Writes the thresholds reached on the way. Asked
    now (no `now` given), the budget's month to date may come from the cache (month_spent)."""
    cached = now is None
    now = now or timezone.now()
    account = OrgBilling.objects.filter(org=org).first()
    if account is not None and account.payment_state == PaymentState.FROZEN:
        raise errors.QuotaExceeded(
            "The organization's payments are overdue: new work is refused until the open invoice is paid.",
            details={
                "quota": "payment_state",
                "resource": "payment_state",
                "limit": None,
                "used": None,
                "requested": None,
                "paymentState": account.payment_state,
            },
        )
    limits = limits_of(org, now)
    reached = {}
    for quota, requested in request.quotas().items():
        limit = limits.get(quota)
        if limit is None:
            continue
        amount = used(org, quota, now=now, exclude=request.sandbox if request.running else None, cached=cached)
        if quota in MONTHLY:
            reached[quota] = (amount, limit)
            if amount >= limit:
                _thresholds_soon(org, now, reached)
                refuse(quota, limit, amount, None)
        elif round(Decimal(str(amount)) + Decimal(str(requested)), 6) > limit:
            _thresholds_soon(org, now, reached)
            refuse(quota, limit, amount, requested)
    _thresholds_soon(org, now, reached)


def _thresholds_soon(org, now, reached: dict) -> None:
    """Thresholds of the amounts a check learnt: at once outside a transaction; inside one (a
    create), when it commits (a refusal rolls it back: the beat task writes them)."""
    if not reached:
        return
    if connection.in_atomic_block:
        transaction.on_commit(lambda: record_thresholds(org, now=now, amounts=dict(reached)))
    else:
        record_thresholds(org, now=now, amounts=reached)


# ---- thresholds ----


def record_thresholds(org, *, now: datetime | None = None, amounts: dict | None = None) -> list[Notice]:
    """Writes a Notice for every threshold (80 %, 100 %) of a monthly quota reached this month and
    not noticed yet, then tells (threshold_reached: webhooks; email). `amounts`: {quota: (used,
    limit)} already known; the other monthly quotas with a limit are measured here."""
    now = now or timezone.now()
    amounts = dict(amounts or {})
    limits = None
    for quota in MONTHLY:
        if quota in amounts:
            continue
        limits = limits if limits is not None else limits_of(org, now)
        if limits.get(quota) is not None:
            amounts[quota] = (used(org, quota, now=now), limits[quota])
    period = plans.month_bounds(now)[0].date()
    written = []
    for quota, (amount, limit) in amounts.items():
        share = percent(amount, limit)
        for threshold in THRESHOLDS:
            if share is None or share < threshold:
                continue
            notice = _notice(org, period, quota, threshold, amount, limit)
            if notice is not None:
                written.append(notice)
    return written


def _notice(org, period, quota: str, threshold: int, amount, limit) -> Notice | None:
    """The Notice, if this call wrote it (else someone had: None), with its signal and email."""
    if Notice.objects.filter(org=org, period=period, quota=quota, percent=threshold).exists():
        return None
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                org=org, period=period, quota=quota, percent=threshold, used=Decimal(str(amount)), limit=limit
            )
            data = notice_data(notice)
            changes = {key: data[key] for key in ("quota", "percent", "used", "limit", "period")}
            record("billing.threshold_reached", target=org, changes=changes)
            signals.threshold_reached.send(sender=Notice, notice=notice, org=org)
    except IntegrityError:  # written meanwhile by another process
        return None
    transaction.on_commit(lambda: _email(org, notice))
    return notice


def notice_data(notice: Notice) -> dict:
    """A notice as billing.threshold_reached's data and GET /billing/quotas show it."""
    return {
        "org": notice.org_id,
        "quota": notice.quota,
        "percent": notice.percent,
        "used": as_json(notice.quota, notice.used),
        "limit": as_json(notice.quota, notice.limit),
        "period": notice.period.strftime("%Y-%m"),
        "reachedAt": notice.created_at,
    }


TITLES = {
    "execution_minutes_per_month": "execution minutes this month",
    "model_spend_per_month": "model spend this month",
    "monthly_budget": "the monthly budget",
}


def recipients(org) -> list[str]:
    """Who hears of thresholds: members holding billing.manage (owners, the billing role), and
    the organization's billing email."""
    to = [
        membership.user.email
        for membership in org_selectors.member_list(org=org)
        if membership.user.email
        and "billing.manage" in (org_selectors.member_permissions(user=membership.user, org=org) or ())
    ]
    account = OrgBilling.objects.filter(org=org).first()
    if account is not None and account.billing_email:
        to.append(account.billing_email)
    return list(dict.fromkeys(to))


def _email(org, notice: Notice) -> None:
    to = recipients(org)
    if not to:
        return
    title = TITLES.get(notice.quota, notice.quota)
    used_text, limit_text = _show(notice.quota, notice.used), _show(notice.quota, notice.limit)
    brand = brand_for(org)
    subject = f"[{brand.name}] {org.name}: {notice.percent}% of {title} reached"
    body = f"{org.name} ({org.slug}) has used {used_text} of {limit_text}: {title} ({notice.period:%Y-%m}).\n"
    if notice.percent >= 100:
        if notice.quota == "monthly_budget":
            body += (
                "\nNew work is refused and the organization's running sandboxes are paused (nothing is lost)."
                "\nRaise the budget, or wait for the next month, then resume them.\n"
            )
        else:
            body += "\nWork that needs more of it is refused until the next month or a higher limit.\n"
    body += "\nGET /api/v1/billing/quotas shows every quota and what is used.\n"
    try:
        send_mail(subject, body, brand.email_from, to)
    except (smtplib.SMTPException, OSError):  # the notice and the webhook say it anyway
        logger.exception("Could not email %s of %s", org.slug, notice)


# ---- the budget ----


def enforce_budget(org, *, now: datetime | None = None) -> list[str]:
    """The beat task's pass for one organization: thresholds; with the budget used up, its running
    sandboxes paused (ids returned) and budget_paused_at set; with room again (budget raised, a
    new month), the mark cleared (the sandboxes stay paused until resumed)."""
    now = now or timezone.now()
    limits = limits_of(org, now)
    budget = limits.get("monthly_budget")
    spent = costs.month_to_date(org, now=now) if budget is not None else None
    if spent is not None:  # what the request path reads until the next pass (month_spent)
        cache.set(spent_key(org, now), str(spent), timeout=settings.VIBEBOX_METER_INTERVAL)
    amounts = {"monthly_budget": (spent, budget)} if budget is not None else {}
    record_thresholds(org, now=now, amounts=amounts)
    if budget is None or spent < budget:
        with transaction.atomic():
            if OrgBilling.objects.filter(org=org, budget_paused_at__isnull=False).update(budget_paused_at=None):
                changes = {"budget": as_json("monthly_budget", budget), "used": as_json("monthly_budget", spent)}
                record("billing.budget_released", target=org, changes=changes)
        return []
    account, _ = OrgBilling.objects.get_or_create(org=org)
    month_start = plans.month_bounds(now)[0]
    with transaction.atomic():
        if (
            OrgBilling.objects.filter(pk=account.pk)
            .filter(Q(budget_paused_at__isnull=True) | Q(budget_paused_at__lt=month_start))
            .update(budget_paused_at=now)
        ):
            changes = {"budget": as_json("monthly_budget", budget), "used": as_json("monthly_budget", spent)}
            record("billing.budget_exhausted", target=org, changes=changes)
    paused = []
    for sandbox in Sandbox.objects.filter(org=org, status=Status.RUNNING).select_related("template", "owner"):
        try:
            sandbox_pause(sandbox=sandbox, reason="budget", note=BUDGET_NOTE)
            paused.append(sandbox.id)
        except errors.ApplicationError as exc:  # moved meanwhile, or the engine failed: the next pass
            logger.warning("could not pause %s (budget): %s", sandbox.id, exc.message)
    return paused


def orgs_to_check(now: datetime | None = None):
    """Organizations with something that can cost: a live sandbox, or usage this month."""
    now = now or timezone.now()
    start = plans.month_bounds(now)[0]
    alive = Sandbox.objects.exclude(status=Status.DESTROYED).values("org_id")
    metered = UsageRecord.objects.filter(hour__gte=start).values("org_id")
    executed = Execution.objects.filter(started_at__gte=start).values("sandbox__org_id")
    paused = OrgBilling.objects.filter(budget_paused_at__isnull=False).values("org_id")
    return Organization.objects.filter(
        Q(pk__in=alive) | Q(pk__in=metered) | Q(pk__in=executed) | Q(pk__in=paused)
    ).order_by("pk")


def check_all(now: datetime | None = None) -> dict:
    """The beat task: every organization's thresholds and budget. {"orgs", "paused"}."""
    checked, paused = 0, 0
    for org in orgs_to_check(now):
        try:
            paused += len(enforce_budget(org, now=now))
        except Exception:  # one organization's failure never stops the others'
            logger.exception("quota check of %s failed", org.pk)
        checked += 1
    return {"orgs": checked, "paused": paused}


# ---- the API's view ----


def overview(org, *, now: datetime | None = None) -> dict:
    """GET /billing/quotas: every quota's limit (null: none), used, percent, and its period."""
    now = now or timezone.now()
    limits = limits_of(org, now)
    account = OrgBilling.objects.filter(org=org).first()
    period = plans.month_bounds(now)[0].strftime("%Y-%m")
    rows = []
    for quota in Limits.LIMIT_FIELDS:
        amount = used(org, quota, now=now)
        rows.append(
            {
                "quota": quota,
                "limit": as_json(quota, limits.get(quota)),
                "used": as_json(quota, amount),
                "percent": percent(amount, limits.get(quota)),
                "period": period if quota in MONTHLY else None,
                "overridden": account is not None and getattr(account, quota) is not None,
            }
        )
    notices = Notice.objects.filter(org=org, period=plans.month_bounds(now)[0].date()).order_by("created_at")
    try:
        plan = plans.plan_at(org, now).slug
    except Plan.DoesNotExist:
        plan = None
    return {
        "plan": plan,
        "paymentState": account.payment_state if account else PaymentState.OK,
        "budgetPausedAt": account.budget_paused_at if account else None,
        "quotas": rows,
        "notices": [notice_data(notice) for notice in notices],
    }
