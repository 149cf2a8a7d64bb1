"""Shapes of billing's API. Money and quantities are decimal strings with 6 decimals (rounded half
even from the engine's exact figures), never JSON numbers; the currency is the plan's."""

from rest_framework import serializers

from vibebox import exceptions as errors
from vibebox.api.serializers import StrictSerializer

from ..models import Resource
from ..resources import CONVERSIONS
from ..selectors import YEARS


def money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=None, decimal_places=6, coerce_to_string=True, **kwargs)


def _with_window(name: str, fields: dict) -> type[serializers.Serializer]:
    """A serializer whose first fields are `from` and `to` (a Python keyword, hence built so)."""
    window = {
        "from": serializers.DateTimeField(help_text="The window's start (inclusive)."),
        "to": serializers.DateTimeField(help_text="The window's end (exclusive)."),
        "groupBy": serializers.ChoiceField(choices=["sandbox", "template", "day", "resource"]),
    }
    return type(name, (serializers.Serializer,), {**window, **fields})


class UsageItemSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The group: a sandbox id, a template name, a day (YYYY-MM-DD) or a resource.")
    label = serializers.CharField(help_text="A sandbox's name, a resource's description; else the key.")
    resource = serializers.ChoiceField(choices=Resource.choices)
    quantity = money(help_text="In the resource's price unit (`unit`).")
    unit = serializers.CharField(help_text="vCPU-hour, GiB-hour, GiB, minute or USD.")


UsageSerializer = _with_window("BillingUsage", {"items": UsageItemSerializer(many=True)})


class CostItemSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    resource = serializers.ChoiceField(choices=Resource.choices)
    amount = money()


class CostGroupSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    amount = money(help_text="The group's cost: its resources' amounts summed (the plan's fee is apart).")


class LineItemSerializer(serializers.Serializer):
    resource = serializers.CharField(help_text='A resource, or "" for the plan\'s monthly fee.')
    description = serializers.CharField()
    plan = serializers.CharField(help_text="The plan's slug.")
    quantity = money(help_text="In `unit`; for the fee the fraction of the month.")
    unit = serializers.CharField()
    unitPrice = money(source="unit_price")
    included = money(help_text="The part of the quantity the plan's included amount covered.")
    amount = money(help_text="(quantity - included) x unitPrice; the fee: the prorated monthly fee.")
    currency = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


CostsSerializer = _with_window(
    "BillingCosts",
    {
        "currency": serializers.CharField(help_text="ISO 4217, the plan's."),
        "fee": money(help_text="The plan's fee for the window (prorated)."),
        "total": money(help_text="fee + every group's amount."),
        "groups": CostGroupSerializer(many=True, help_text="One per group, most expensive first."),
        "items": CostItemSerializer(many=True, help_text="Per group and resource."),
        "lineItems": LineItemSerializer(many=True, help_text="The organization's line items, per plan period."),
    },
)


class SandboxCostSerializer(serializers.Serializer):
    sandboxId = serializers.CharField()
    since = serializers.DateTimeField(help_text="The sandbox's creation.")
    total = money(help_text="Its cost so far (its share of the organization's; the plan's fee is not part).")
    ratePerHour = money(help_text="What it costs per hour now: its last metered hour at the plan's unit prices.")
    currency = serializers.CharField()


class PlanPriceSerializer(serializers.Serializer):
    resource = serializers.ChoiceField(choices=Resource.choices)
    unit = serializers.SerializerMethodField()
    unitPrice = money(source="unit_price")
    included = money(help_text="Units included every month.")

    def get_unit(self, price) -> str:
        return CONVERSIONS[price.resource].unit


class LimitsSerializer(serializers.Serializer):
    maxRunningSandboxes = serializers.IntegerField(source="max_running_sandboxes", allow_null=True)
    maxVcpus = serializers.DecimalField(
        source="max_vcpus", max_digits=8, decimal_places=2, coerce_to_string=True, allow_null=True
    )
    maxMemoryBytes = serializers.IntegerField(source="max_memory_bytes", allow_null=True)
    maxStorageBytes = serializers.IntegerField(source="max_storage_bytes", allow_null=True)
    maxSnapshots = serializers.IntegerField(source="max_snapshots", allow_null=True)
    executionMinutesPerMonth = serializers.IntegerField(source="execution_minutes_per_month", allow_null=True)
    modelSpendPerMonth = serializers.DecimalField(
        source="model_spend_per_month", max_digits=12, decimal_places=2, coerce_to_string=True, allow_null=True
    )
    monthlyBudget = serializers.DecimalField(
        source="monthly_budget", max_digits=12, decimal_places=2, coerce_to_string=True, allow_null=True
    )


class PlanSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    currency = serializers.CharField()
    monthlyFee = serializers.DecimalField(source="monthly_fee", max_digits=12, decimal_places=2, coerce_to_string=True)
    prices = PlanPriceSerializer(many=True, source="prices.all")
    limits = LimitsSerializer(source="*", help_text="null: no limit.")


class ScheduledPlanSerializer(serializers.Serializer):
    plan = serializers.SlugField()
    effectiveFrom = serializers.DateTimeField()


class OrgPlanSerializer(serializers.Serializer):
    plan = PlanSerializer()
    effectiveFrom = serializers.DateTimeField(allow_null=True, help_text="null: the default plan, never chosen.")
    scheduled = ScheduledPlanSerializer(many=True, help_text="Changes that start later.")
    limits = LimitsSerializer(help_text="The organization's: its overrides, else the plan's (null: no limit).")
    monthToDate = money(help_text="This month's cost so far, the plan's fee included.")
    currency = serializers.CharField()
    periodStart = serializers.DateTimeField()
    periodEnd = serializers.DateTimeField()


class PlanChangeSerializer(StrictSerializer):
    plan = serializers.SlugField(help_text="A public plan's slug (GET /billing/plans).")
    effectiveFrom = serializers.DateTimeField(
        required=False, help_text="When the plan starts: now (default) or later; never in the past; before 9001."
    )

    def validate_effectiveFrom(self, value):
        # Past the calendar's reach (date arithmetic overflows near year 9999): the service's code,
        # so a client and the schema fuzz see one rule for effectiveFrom.
        if not YEARS[0] <= value.year <= YEARS[1]:
            raise errors.InvalidEffectiveFrom(
                f"effectiveFrom must be in the years {YEARS[0]} to {YEARS[1]}.",
                details={"fields": {"effectiveFrom": [{"message": "out of range", "code": "invalid_effective_from"}]}},
            )
        return value
