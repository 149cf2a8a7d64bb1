"""The cost engine (apps/billing/costs.py): plans valid at the time, included amounts, proration,
exact Decimal money, currency. Usage rows are written as the meter's rollup writes them."""

from datetime import timedelta
from decimal import Decimal, localcontext

import pytest
from django.test import override_settings

from apps.billing import costs, plans
from apps.billing.models import OrgBilling, Plan, PlanAssignment, PlanPrice
from tests.billing.usage_rows import at, org_of, sandbox_maker, template_row, usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(owner):
    return org_of(owner)


@pytest.fixture
def make_sandbox(owner, db):
    return sandbox_maker(owner, template_row())


D = Decimal


def assign(org, slug, when):
    return PlanAssignment.objects.create(org=org, plan=Plan.objects.get(slug=slug), effective_from=at(when))


def test_seeded_plans_price_every_resource():
    for slug in ("free", "pro", "team"):
        plan = Plan.objects.get(slug=slug)
        assert plan.public and plan.currency == "USD"
        assert {price.resource for price in plan.prices.all()} == set(costs.RESOURCES)
    assert Plan.objects.get(slug="free").monthly_fee == 0
    assert Plan.objects.get(slug="pro").monthly_fee == D("20.00")
    assert not Plan.objects.get(slug="internal").public


def test_default_plan_is_the_setting(org):
    assert plans.plan_at(org, at("2026-11-10T00:00")).slug == "internal"  # tests/settings.py
    with override_settings(VIBEBOX_DEFAULT_PLAN="free"):
        assert plans.plan_at(org, at("2026-11-10T00:00")).slug == "free"


def test_month_bounds():
    assert plans.month_bounds(at("2026-02-14T10:00")) == (at("2026-02-01T00:00"), at("2026-03-01T00:00"))
    assert plans.month_bounds(at("2026-12-31T23:59")) == (at("2026-12-01T00:00"), at("2027-01-01T00:00"))


def test_segments_cut_where_the_plan_changes(org):
    assign(org, "free", "2026-01-01T00:00")
    assign(org, "pro", "2026-11-16T00:00")
    result = plans.segments(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    assert [(plan.slug, start, end) for plan, start, end in result] == [
        ("free", at("2026-11-01T00:00"), at("2026-11-16T00:00")),
        ("pro", at("2026-11-16T00:00"), at("2026-12-01T00:00")),
    ]


def test_included_amounts_are_free_and_the_rest_is_charged(org, make_sandbox):
    assign(org, "pro", "2026-01-01T00:00")
    box = make_sandbox()
    # 250 vCPU-hours in November: 200 included on pro, 50 at 0.04.
    usage(box, "2026-11-10T10:00", cpu_seconds=250 * 3600)
    items = costs.line_items(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    by = {item.resource: item for item in items}
    assert by[""].amount == D("20.00")  # the whole month's fee
    assert by["cpu"].quantity == D(250) and by["cpu"].included == D(200)
    assert by["cpu"].amount == D("2.00")
    assert by["cpu"].unit == "vCPU-hour" and by["cpu"].currency == "USD"
    assert costs.total(org, at("2026-11-01T00:00"), at("2026-12-01T00:00")) == D("22.00")


def test_plan_change_mid_month_prorates_fee_and_allowances(org, make_sandbox):
    assign(org, "free", "2026-01-01T00:00")
    assign(org, "pro", "2026-11-16T00:00")  # November has 30 days: half on free, half on pro
    box = make_sandbox()
    usage(box, "2026-11-05T10:00", cpu_seconds=30 * 3600)  # free: 10 of 30 included -> 20 at 0.05 = 1.00
    usage(box, "2026-11-20T10:00", cpu_seconds=150 * 3600)  # pro: 100 included -> 50 at 0.04 = 2.00
    items = costs.line_items(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    cpu = [(item.plan, item.included, item.amount) for item in items if item.resource == "cpu"]
    assert cpu == [("free", D(10), D("1.00")), ("pro", D(100), D("2.00"))]
    fees = [(item.plan, item.amount) for item in items if item.resource == ""]
    assert fees == [("pro", D("10.00"))]  # free has no fee; pro's for half a month
    assert costs.total(org, at("2026-11-01T00:00"), at("2026-12-01T00:00")) == D("13.00")


def test_the_hour_belongs_to_the_plan_it_starts_in(org, make_sandbox):
    assign(org, "free", "2026-01-01T00:00")
    assign(org, "team", "2026-11-16T00:30")
    box = make_sandbox()
    usage(box, "2026-11-16T00:00", net_out_bytes=3 * 1024**3)
    items = costs.line_items(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    assert [item.plan for item in items if item.resource == "network_out"] == ["free"]


def test_decimal_exactness(org, make_sandbox):
    """Three sandboxes at a quarter vCPU-hour less a third... 60 rows of 1500 CPU-seconds: 25 hours
    exactly, 5 past free's 20 at 0.05 = 0.25 exactly; the sandboxes' shares add up to it."""
    assign(org, "free", "2026-01-01T00:00")
    boxes = [make_sandbox() for _ in range(3)]
    for day in range(1, 21):
        for box in boxes:
            usage(box, f"2026-11-{day:02d}T10:00", cpu_seconds=1500, memory_gib_seconds="0.000001")
    items = {item.resource: item for item in costs.line_items(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))}
    assert items["cpu"].quantity == D(25)
    assert items["cpu"].included == D(20)
    assert items["cpu"].amount == D("0.25")
    with localcontext(costs.PRECISE):
        assert items["memory"].quantity == D("0.00006") / D(3600)
    assert items["memory"].amount == 0
    assert all(isinstance(item.amount, Decimal) for item in items.values())
    parts = [costs.sandbox_cost(box, now=at("2026-11-30T00:00"))["total"] for box in boxes]
    assert abs(sum(parts) - D("0.25")) < D("1e-40")
    assert costs.total(org, at("2026-11-01T00:00"), at("2026-12-01T00:00")) == D("0.25")


def test_sandbox_share_adds_up_to_the_org_total(org, make_sandbox):
    assign(org, "pro", "2026-01-01T00:00")
    one, two = make_sandbox(), make_sandbox()
    usage(one, "2026-11-02T10:00", cpu_seconds=300 * 3600)  # 300 of 400 vCPU-hours
    usage(two, "2026-11-03T10:00", cpu_seconds=100 * 3600)
    window = (at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    first = sum(item.amount for item in costs.line_items(org, *window, sandbox=one))
    second = sum(item.amount for item in costs.line_items(org, *window, sandbox=two))
    # the allowance goes first come: the first sandbox used its 200 included vCPU-hours
    assert (first, second) == (D("4.00"), D("4.00"))
    assert first + second + D("20.00") == costs.total(org, *window)
    assert not [item for item in costs.line_items(org, *window, sandbox=one) if item.resource == ""]
    groups, fee, currency = costs.grouped(org, *window, key=lambda row: row["sandbox_id"])
    assert {key: sum(values.values()) for key, values in groups.items()} == {one.id: D("4.00"), two.id: D("4.00")}
    assert (fee, currency) == (D("20.00"), "USD")


def test_currency_is_the_plans(org, make_sandbox):
    plan = Plan.objects.create(slug="euro", name="Euro", currency="EUR", monthly_fee=D("10.00"))
    PlanPrice.objects.create(plan=plan, resource="cpu", unit_price=D("0.030000"), included=D(0))
    assign(org, "euro", "2026-01-01T00:00")
    usage(make_sandbox(), "2026-11-02T10:00", cpu_seconds=3600)
    items = costs.line_items(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    assert {item.currency for item in items} == {"EUR"}
    assert costs.total(org, at("2026-11-01T00:00"), at("2026-12-01T00:00")) == D("10.03")


def test_mixed_currencies_are_refused(org, make_sandbox):
    plan = Plan.objects.create(slug="euro", name="Euro", currency="EUR", monthly_fee=D("10.00"))
    assign(org, "pro", "2026-01-01T00:00")
    PlanAssignment.objects.create(org=org, plan=plan, effective_from=at("2026-11-15T00:00"))
    from vibebox import exceptions as errors

    with pytest.raises(errors.MixedCurrencies):
        costs.total(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))


def test_window_across_months_uses_each_months_allowance(org, make_sandbox):
    assign(org, "pro", "2026-01-01T00:00")
    box = make_sandbox()
    usage(box, "2026-10-31T10:00", cpu_seconds=200 * 3600)  # October's allowance covers it
    usage(box, "2026-11-01T10:00", cpu_seconds=201 * 3600)  # one past November's
    assert costs.total(org, at("2026-10-01T00:00"), at("2026-12-01T00:00")) == D("40.04")


def test_month_to_date_and_limits(org, make_sandbox):
    assign(org, "team", "2026-01-01T00:00")
    usage(make_sandbox(), "2026-11-02T10:00", net_out_bytes=101 * 1024**3)
    now = at("2026-11-16T00:00")
    # half of team's fee, and 101 GiB sent against the month's 100 GiB included: 1 x 0.07
    assert costs.month_to_date(org, now=now) == D("49.57")
    assert plans.limits(org)["max_running_sandboxes"] == 50
    OrgBilling.objects.create(org=org, max_running_sandboxes=3)
    assert plans.limits(org)["max_running_sandboxes"] == 3
    assert plans.limits(org)["monthly_budget"] is None


def test_sandbox_cost_and_rate(org, make_sandbox):
    assign(org, "free", "2026-01-01T00:00")
    box = make_sandbox()
    usage(box, "2026-11-02T10:00", cpu_seconds=1800, running_seconds=1800)
    result = costs.sandbox_cost(box, now=at("2026-11-02T11:10"))
    assert result["currency"] == "USD"
    assert result["total"] == D(0)  # inside the free allowance
    assert result["ratePerHour"] == D("0.05")  # half a vCPU-hour in half an hour, at 0.05 per vCPU-hour
    assert costs.sandbox_cost(box, now=at("2026-11-02T10:00") + timedelta(hours=5))["ratePerHour"] == 0


def test_days_add_up_to_the_month(org, make_sandbox):
    """Allowances are used in time order, so the costs of consecutive windows add up exactly."""
    assign(org, "free", "2026-01-01T00:00")
    assign(org, "pro", "2026-11-20T12:00")
    boxes = [make_sandbox() for _ in range(2)]
    for day in range(1, 31):
        for number, box in enumerate(boxes):
            usage(box, f"2026-11-{day:02d}T{8 + number:02d}:00", cpu_seconds=6 * 3600 + 13, memory_gib_seconds=12345)
    days = [
        costs.total(
            org,
            at(f"2026-11-{day:02d}T00:00"),
            at("2026-12-01T00:00") if day == 30 else at(f"2026-11-{day + 1:02d}T00:00"),
        )
        for day in range(1, 31)
    ]
    month = costs.total(org, at("2026-11-01T00:00"), at("2026-12-01T00:00"))
    with localcontext(costs.PRECISE):
        assert abs(sum(days) - month) < D("1e-40")
    assert days[0] == 0  # free's allowance (20 x 19.5/30 = 13 vCPU-hours) covers the first day's 12
    groups, fee, _ = costs.grouped(
        org, at("2026-11-01T00:00"), at("2026-12-01T00:00"), key=lambda row: row["hour"].date()
    )
    with localcontext(costs.PRECISE):
        assert abs(sum(sum(values.values()) for values in groups.values()) + fee - month) < D("1e-40")
    assert month > 0
