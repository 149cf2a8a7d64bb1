"""Seeds the plans free, pro and team (prices for every resource, included amounts, limits) and
`internal`: not offered to organizations, no fee, no prices, no limits; staff assign it to their own
organizations, and the test suite makes it the default plan (tests/settings.py says why).

Operators change plans in the admin afterwards; this migration never touches a plan that exists.
"""

from decimal import Decimal as D

from django.db import migrations

GIB = 1024**3

# resource: (unit price, included per month) in the plan's currency; units in billing/resources.py.
PLANS = {
    "free": {
        "name": "Free",
        "monthly_fee": D("0.00"),
        "limits": {
            "max_running_sandboxes": 2,
            "max_vcpus": D("2"),
            "max_memory_bytes": 4 * GIB,
            "max_storage_bytes": 20 * GIB,
            "max_snapshots": 5,
            "execution_minutes_per_month": 600,
            "model_spend_per_month": D("5.00"),
            "monthly_budget": D("10.00"),
        },
        "prices": {
            "cpu": ("0.050000", "20"),
            "memory": ("0.005000", "40"),
            "workspace": ("0.000200", "7300"),  # 10 GiB kept all month
            "snapshots": ("0.000100", "3650"),  # 5 GiB kept all month
            "network_in": ("0.000000", "0"),
            "network_out": ("0.090000", "1"),
            "execution": ("0.000000", "0"),  # metered for the quota; CPU and memory are what cost
            "model": ("1.000000", "1"),  # the gateway's price, passed on
        },
    },
    "pro": {
        "name": "Pro",
        "monthly_fee": D("20.00"),
        "limits": {
            "max_running_sandboxes": 10,
            "max_vcpus": D("16"),
            "max_memory_bytes": 32 * GIB,
            "max_storage_bytes": 200 * GIB,
            "max_snapshots": 50,
            "execution_minutes_per_month": None,
            "model_spend_per_month": D("100.00"),
            "monthly_budget": None,
        },
        "prices": {
            "cpu": ("0.040000", "200"),
            "memory": ("0.004000", "400"),
            "workspace": ("0.000150", "36500"),  # 50 GiB
            "snapshots": ("0.000100", "18250"),  # 25 GiB
            "network_in": ("0.000000", "0"),
            "network_out": ("0.080000", "20"),
            "execution": ("0.000000", "0"),
            "model": ("1.000000", "0"),
        },
    },
    "team": {
        "name": "Team",
        "monthly_fee": D("99.00"),
        "limits": {
            "max_running_sandboxes": 50,
            "max_vcpus": D("64"),
            "max_memory_bytes": 128 * GIB,
            "max_storage_bytes": 1024 * GIB,
            "max_snapshots": 500,
            "execution_minutes_per_month": None,
            "model_spend_per_month": D("1000.00"),
            "monthly_budget": None,
        },
        "prices": {
            "cpu": ("0.035000", "1000"),
            "memory": ("0.003500", "2000"),
            "workspace": ("0.000100", "146000"),  # 200 GiB
            "snapshots": ("0.000080", "73000"),  # 100 GiB
            "network_in": ("0.000000", "0"),
            "network_out": ("0.070000", "100"),
            "execution": ("0.000000", "0"),
            "model": ("1.000000", "0"),
        },
    },
    "internal": {
        "name": "Internal (staff)",
        "monthly_fee": D("0.00"),
        "public": False,
        "limits": {},
        "prices": {},
    },
}


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    PlanPrice = apps.get_model("billing", "PlanPrice")
    for slug, spec in PLANS.items():
        if Plan.objects.filter(slug=slug).exists():
            continue
        plan = Plan.objects.create(
            slug=slug,
            name=spec["name"],
            currency="USD",
            monthly_fee=spec["monthly_fee"],
            public=spec.get("public", True),
            **spec["limits"],
        )
        for resource, (price, included) in spec["prices"].items():
            PlanPrice.objects.create(plan=plan, resource=resource, unit_price=D(price), included=D(included))


def unseed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    PlanAssignment = apps.get_model("billing", "PlanAssignment")
    slugs = [slug for slug in PLANS if not PlanAssignment.objects.filter(plan__slug=slug).exists()]
    Plan.objects.filter(slug__in=slugs).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
