"""Billing: what sandboxes really used (samples rolled up per hour), plans and their prices,
quotas, invoices and the payment provider's state.

Money is Decimal everywhere (DecimalField, never floats) in the plan's currency. Usage amounts are
Decimal too, so the cost engine multiplies Decimals only.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models

from vibebox.ids import random_id

MONEY = {"max_digits": 18, "decimal_places": 6}  # what a line costs before rounding to cents
AMOUNT = {"max_digits": 24, "decimal_places": 6}  # usage amounts (seconds, GiB-seconds)


class Resource(models.TextChoices):
    """What a plan prices. The unit is the one prices are quoted in; UsageRecord keeps finer
    amounts (seconds, bytes) that the cost engine converts (billing/resources.py)."""

    CPU = "cpu", "vCPU-hours"
    MEMORY = "memory", "GiB-hours of memory"
    WORKSPACE = "workspace", "GiB-hours of workspace storage"
    SNAPSHOTS = "snapshots", "GiB-hours of snapshot storage"
    NETWORK_IN = "network_in", "GiB received"
    NETWORK_OUT = "network_out", "GiB sent"
    EXECUTION = "execution", "execution minutes"
    MODEL = "model", "model spend (USD at the gateway's prices)"


class MeterSample(models.Model):
    """One reading of a sandbox's counters, taken by the sampler every VIBEBOX_METER_INTERVAL and at
    every lifecycle change. CPU and network counters are cumulative since the container's start
    (`boot`); a new boot starts them again from zero. The hourly rollup is computed from these
    rows alone, so it can be re-run at will. Kept VIBEBOX_METER_SAMPLES_DAYS days."""

    sandbox = models.ForeignKey("sandboxes.Sandbox", on_delete=models.CASCADE, related_name="meter_samples")
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    taken_at = models.DateTimeField()
    state = models.CharField(max_length=16)  # the sandbox's status when read: running, paused, stopped...
    boot = models.CharField(max_length=64, blank=True)  # the container's start time: counters reset with it
    cpu_ns = models.PositiveBigIntegerField(default=0)  # cumulative CPU time of the container
    memory_bytes = models.PositiveBigIntegerField(default=0)  # resident now, page cache excluded
    net_rx_bytes = models.PositiveBigIntegerField(default=0)  # cumulative
    net_tx_bytes = models.PositiveBigIntegerField(default=0)  # cumulative
    workspace_bytes = models.PositiveBigIntegerField(null=True, blank=True)  # last measured size, if known

    class Meta:
        ordering = ["sandbox", "taken_at"]
        indexes = [models.Index(fields=["sandbox", "taken_at"]), models.Index(fields=["taken_at"])]

    def __str__(self):
        return f"{self.sandbox_id} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class UsageRecord(models.Model):
    """Usage of one sandbox in one hour (UTC), rolled up from its samples, executions, snapshots
    and model requests. Recomputed whole for a window (never incremented), so re-running a
    window changes nothing."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="usage_records")
    sandbox = models.ForeignKey("sandboxes.Sandbox", on_delete=models.CASCADE, related_name="usage_records")
    template = models.CharField(max_length=100, blank=True)
    hour = models.DateTimeField()  # the hour's start, UTC
    cpu_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    memory_gib_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    workspace_gib_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    snapshot_gib_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    net_in_bytes = models.PositiveBigIntegerField(default=0)
    net_out_bytes = models.PositiveBigIntegerField(default=0)
    execution_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    running_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    paused_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    stopped_seconds = models.DecimalField(default=Decimal(0), **AMOUNT)
    model_input_tokens = models.PositiveBigIntegerField(default=0)  # input + cache tokens
    model_output_tokens = models.PositiveBigIntegerField(default=0)
    model_cost_usd = models.DecimalField(default=Decimal(0), **MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["hour", "sandbox"]
        constraints = [models.UniqueConstraint(fields=["sandbox", "hour"], name="one_usage_record_per_sandbox_hour")]
        indexes = [models.Index(fields=["org", "hour"])]

    def __str__(self):
        return f"{self.sandbox_id} {self.hour:%Y-%m-%d %H}h"


class Limits(models.Model):
    """Quotas and budget; null is no limit (on an override: the plan's)."""

    max_running_sandboxes = models.PositiveIntegerField(null=True, blank=True)
    max_vcpus = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    max_memory_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    max_storage_bytes = models.PositiveBigIntegerField(null=True, blank=True)  # workspaces' disk sizes
    max_snapshots = models.PositiveIntegerField(null=True, blank=True)
    execution_minutes_per_month = models.PositiveIntegerField(null=True, blank=True)
    model_spend_per_month = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    LIMIT_FIELDS = (
        "max_running_sandboxes",
        "max_vcpus",
        "max_memory_bytes",
        "max_storage_bytes",
        "max_snapshots",
        "execution_minutes_per_month",
        "model_spend_per_month",
        "monthly_budget",
    )

    class Meta:
        abstract = True


class Plan(Limits):
    """A price list and its quotas. Seeded: free, pro, team (migration 0002); operators edit them
    in the admin. Once in use (services.plan_in_use) its prices, fee and currency are frozen (a new
    price is a new plan); its limits stay editable and act from then on."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    currency = models.CharField(max_length=3, default="USD")
    monthly_fee = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    public = models.BooleanField(default=True)  # offered to organizations (else assigned by staff only)
    stripe_price_id = models.CharField(max_length=100, blank=True)  # the base fee's Stripe price, if any
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["monthly_fee", "slug"]

    def __str__(self):
        return self.slug


class PlanPrice(models.Model):
    """One resource's unit price on a plan, after `included` units a month are free."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices")
    resource = models.CharField(max_length=16, choices=Resource.choices)
    unit_price = models.DecimalField(max_digits=12, decimal_places=6)
    included = models.DecimalField(max_digits=16, decimal_places=4, default=Decimal(0))

    class Meta:
        ordering = ["plan", "resource"]
        constraints = [models.UniqueConstraint(fields=["plan", "resource"], name="one_price_per_plan_resource")]

    def __str__(self):
        return f"{self.plan_id}:{self.resource} {self.unit_price}"


class PlanAssignment(models.Model):
    """The plan an organization is on from `effective_from`: the one valid at a moment is the
    latest that started at or before it (none: VIBEBOX_DEFAULT_PLAN)."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="plan_assignments")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="assignments")
    effective_from = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["org", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["org", "effective_from"], name="one_plan_per_org_moment")]

    def __str__(self):
        return f"{self.org_id} on {self.plan_id} from {self.effective_from:%Y-%m-%d}"


class PaymentState(models.TextChoices):
    OK = "ok"
    PAST_DUE = "past_due"  # a payment failed: the grace period runs
    FROZEN = "frozen"  # the grace period ended unpaid: nothing new may start


class OrgBilling(Limits):
    """An organization's billing account: its quota overrides (Limits: null keeps the plan's),
    payment provider ids and dunning state. Made on first use."""

    org = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="billing")
    billing_email = models.EmailField(blank=True)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)  # null: settings
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    payment_state = models.CharField(max_length=12, choices=PaymentState.choices, default=PaymentState.OK)
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    budget_paused_at = models.DateTimeField(null=True, blank=True)  # sandboxes paused: budget exhausted
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"billing of {self.org_id}"


class Notice(models.Model):
    """A threshold (80 %, 100 %) of a quota or the budget reached in a period, once: the webhook
    and the email are sent when the row is first written."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    period = models.DateField()  # the month's first day
    quota = models.CharField(max_length=40)  # "monthly_budget", "execution_minutes_per_month", ...
    percent = models.PositiveSmallIntegerField()
    used = models.DecimalField(**AMOUNT)
    limit = models.DecimalField(**AMOUNT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["org", "period", "quota", "percent"], name="one_notice_per_threshold")
        ]

    def __str__(self):
        return f"{self.org_id} {self.quota} {self.percent}% in {self.period:%Y-%m}"


def new_invoice_id() -> str:
    return random_id("inv_", 16)


class InvoiceStatus(models.TextChoices):
    OPEN = "open"  # issued, not paid yet
    PAID = "paid"
    FAILED = "failed"  # the payment failed (dunning runs)
    VOID = "void"


class Invoice(models.Model):
    """One organization's month, closed by the beat task (once: unique per org and period)."""

    id = models.CharField(primary_key=True, max_length=24, default=new_invoice_id, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, unique=True)  # "VB-2026-000001"
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal(0))
    tax = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=8, choices=InvoiceStatus.choices, default=InvoiceStatus.OPEN)
    issued_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    stripe_invoice_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [models.UniqueConstraint(fields=["org", "period_start"], name="one_invoice_per_org_period")]

    def __str__(self):
        return self.number


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    description = models.CharField(max_length=200)
    resource = models.CharField(max_length=16, blank=True)  # empty for the plan's fee
    plan = models.CharField(max_length=40)
    quantity = models.DecimalField(**AMOUNT)
    unit = models.CharField(max_length=40, blank=True)
    unit_price = models.DecimalField(max_digits=12, decimal_places=6)
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["invoice", "position"]

    def __str__(self):
        return self.description


class StripeEvent(models.Model):
    """A Stripe webhook event handled: its id makes a redelivery a no-op."""

    id = models.CharField(primary_key=True, max_length=100)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.id


class InvoiceCounter(models.Model):
    """The last invoice number taken in a year: locked and bumped in the transaction that writes
    the invoice, so numbers have neither gaps nor duplicates (a rolled-back close gives its number
    back with it)."""

    year = models.PositiveSmallIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.year}: {self.last}"
