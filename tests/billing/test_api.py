"""Billing's API: usage, costs, export (streamed CSV and JSON lines), a sandbox's cost, plans and
the plan change; who may (owner, billing role, developer, outsider 404, anonymous 401, key scopes)
and bad input (stable codes)."""

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.billing import plans
from apps.billing.models import PlanAssignment
from apps.keys.scopes import ALL_SCOPES, DEFAULT_SCOPES
from apps.orgs import services as org_services
from tests.billing.test_costs import assign
from tests.billing.usage_rows import org_of, sandbox_maker, template_row, usage
from tests.conftest import _client, streamed_body

pytestmark = pytest.mark.django_db

D = Decimal
NOVEMBER = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"


@pytest.fixture
def org(owner):
    return org_of(owner)


@pytest.fixture
def boxes(owner, org):
    """Two sandboxes of the owner on pro with November's usage: 300 + 100 vCPU-hours, 2 GiB sent."""
    make = sandbox_maker(owner, template_row())
    assign(org, "pro", "2026-01-01T00:00")
    one, two = make(name="alpha"), make(name="beta")
    usage(one, "2026-11-02T10:00", cpu_seconds=300 * 3600, net_out_bytes=2 * 1024**3)
    usage(two, "2026-11-03T10:00", cpu_seconds=100 * 3600)
    usage(two, "2026-11-04T11:00", cpu_seconds=0, memory_gib_seconds="7200")
    return one, two


def test_usage_grouped_every_way(api_client, boxes):
    one, two = boxes
    by_resource = api_client.get(f"/api/v1/billing/usage?{NOVEMBER}&groupBy=resource")
    assert by_resource.status_code == 200, by_resource.content
    body = by_resource.json()
    assert body["groupBy"] == "resource" and body["from"].startswith("2026-11-01")
    assert {item["key"]: item["quantity"] for item in body["items"]} == {
        "cpu": "400.000000",
        "memory": "2.000000",
        "network_out": "2.000000",
    }
    assert {item["key"]: item["unit"] for item in body["items"]}["cpu"] == "vCPU-hour"
    by_sandbox = api_client.get(f"/api/v1/billing/usage?{NOVEMBER}&groupBy=sandbox").json()["items"]
    assert {(item["key"], item["label"], item["resource"]) for item in by_sandbox} == {
        (one.id, "alpha", "cpu"),
        (one.id, "alpha", "network_out"),
        (two.id, "beta", "cpu"),
        (two.id, "beta", "memory"),
    }
    by_day = api_client.get(f"/api/v1/billing/usage?{NOVEMBER}&groupBy=day").json()["items"]
    assert sorted({item["key"] for item in by_day}) == ["2026-11-02", "2026-11-03", "2026-11-04"]
    by_template = api_client.get(f"/api/v1/billing/usage?{NOVEMBER}&groupBy=template").json()["items"]
    assert {item["key"] for item in by_template} == {"billed"}


def test_costs_are_money_strings_that_add_up(api_client, boxes):
    one, two = boxes
    body = api_client.get(f"/api/v1/billing/costs?{NOVEMBER}&groupBy=sandbox").json()
    assert body["currency"] == "USD"
    # pro: 20.00 fee; 400 vCPU-hours, 200 included -> 200 x 0.04 = 8.00 (the first 200 were alpha's);
    # 2 GiB sent of 20 included; 2 GiB-hours of memory of 400 included.
    assert body["fee"] == "20.000000" and body["total"] == "28.000000"
    assert sorted(body["groups"], key=lambda group: group["label"]) == [
        {"key": one.id, "label": "alpha", "amount": "4.000000"},
        {"key": two.id, "label": "beta", "amount": "4.000000"},
    ]
    lines = {(line["resource"], line["plan"]): line for line in body["lineItems"]}
    assert lines[("cpu", "pro")]["included"] == "200.000000" and lines[("cpu", "pro")]["unitPrice"] == "0.040000"
    assert lines[("", "pro")]["amount"] == "20.000000"
    by_day = api_client.get(f"/api/v1/billing/costs?{NOVEMBER}&groupBy=day").json()
    assert {group["key"]: group["amount"] for group in by_day["groups"]} == {
        "2026-11-02": "4.000000",
        "2026-11-03": "4.000000",
    }
    day = api_client.get("/api/v1/billing/costs?from=2026-11-03&to=2026-11-04").json()
    assert day["total"] == "4.666667"  # the day's 4.00 and a thirtieth of the fee


def test_export_streams_csv_and_jsonl(api_client, boxes):
    one, two = boxes
    answer = api_client.get(f"/api/v1/billing/usage/export?{NOVEMBER}&format=csv")
    assert answer.status_code == 200 and answer.streaming
    assert answer["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(streamed_body(answer).decode())))
    assert [(row["sandboxId"], row["hour"]) for row in rows] == [
        (one.id, "2026-11-02T10:00:00Z"),
        (two.id, "2026-11-03T10:00:00Z"),
        (two.id, "2026-11-04T11:00:00Z"),
    ]
    assert D(rows[0]["cpuSeconds"]) == 300 * 3600 and int(rows[0]["netOutBytes"]) == 2 * 1024**3
    jsonl = api_client.get(f"/api/v1/billing/usage/export?{NOVEMBER}&format=jsonl")
    assert jsonl["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in streamed_body(jsonl).decode().splitlines()]
    assert len(lines) == 3 and lines[2]["memoryGibSeconds"] == "7200.000000" and lines[0]["template"] == "billed"


def test_export_pages_through_more_than_a_batch(api_client, owner, org, monkeypatch):
    from apps.billing.api import views

    monkeypatch.setattr(views, "BATCH", 7)
    make = sandbox_maker(owner, template_row())
    box = make()
    for hour in range(30):
        usage(box, f"2026-11-0{1 + hour // 24}T{hour % 24:02d}:00", cpu_seconds=hour)
    lines = streamed_body(api_client.get(f"/api/v1/billing/usage/export?{NOVEMBER}&format=jsonl")).splitlines()
    assert [D(json.loads(line)["cpuSeconds"]) for line in lines] == list(range(30))


def test_sandbox_cost(api_client, boxes):
    one, _ = boxes
    answer = api_client.get(f"/api/v1/sandboxes/{one.id}/cost")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["sandboxId"] == one.id and body["currency"] == "USD"
    assert D(body["total"]) >= 0 and D(body["ratePerHour"]) == 0  # nothing metered in the last hours
    assert api_client.get("/api/v1/sandboxes/alpha/cost").json()["sandboxId"] == one.id  # by name


def test_plans_and_plan_change(api_client, org, owner):
    listed = api_client.get("/api/v1/billing/plans").json()
    assert [plan["slug"] for plan in listed] == ["free", "pro", "team"]  # internal is not offered
    pro = listed[1]
    assert pro["monthlyFee"] == "20.00" and pro["limits"]["maxRunningSandboxes"] == 10
    assert {price["resource"] for price in pro["prices"]} >= {"cpu", "memory", "model"}
    current = api_client.get("/api/v1/billing/plan").json()
    assert current["plan"]["slug"] == "internal" and current["effectiveFrom"] is None  # tests/settings.py

    changed = api_client.put("/api/v1/billing/plan", {"plan": "team"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["plan"]["slug"] == "team" and changed.json()["limits"]["maxRunningSandboxes"] == 50
    later = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    scheduled = api_client.put(
        "/api/v1/billing/plan", {"plan": "pro", "effectiveFrom": later.isoformat()}, format="json"
    ).json()
    assert scheduled["plan"]["slug"] == "team"
    assert scheduled["scheduled"] == [{"plan": "pro", "effectiveFrom": later.isoformat().replace("+00:00", "Z")}]
    assert plans.plan_at(org, later + timedelta(seconds=1)).slug == "pro"
    entries = AuditEntry.objects.filter(org_id=org.pk, action="billing.plan_changed").order_by("seq")
    assert [entry.changes["plan"]["to"] for entry in entries] == ["team", "pro"]
    assert PlanAssignment.objects.filter(org=org).count() == 2


def test_plan_change_bad_input(api_client, org):
    def put(body):
        return api_client.put("/api/v1/billing/plan", body, format="json")

    assert put({"plan": "nope"}).json()["error"]["code"] == "plan_not_found"
    assert put({"plan": "internal"}).json()["error"]["code"] == "plan_not_found"  # staff assign it in the admin
    past = (timezone.now() - timedelta(days=2)).isoformat()
    answer = put({"plan": "pro", "effectiveFrom": past})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_effective_from")
    assert put({"plan": "pro", "extra": 1}).json()["error"]["code"] == "unknown_field"
    assert put({}).status_code == 400
    for far in ("9999-12-31T00:00:00Z", "9001-01-01T00:00:00Z"):
        answer = put({"plan": "pro", "effectiveFrom": far})
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_effective_from"), far
    answer = put({"plan": "pro", "effectiveFrom": "9999-12-31T23:00:00-01:00"})  # year 10000 in UTC: no datetime
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "validation_error")
    assert not PlanAssignment.objects.filter(org=org).exists()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", "invalid_billing_window"),
        ("from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z", "invalid_billing_window"),
        ("from=yesterday", "invalid_billing_window"),
        ("from=2026-11-01T00:00:00", "invalid_billing_window"),  # no zone
        ("from=2020-01-01T00:00:00Z&to=2026-11-01T00:00:00Z", "billing_window_too_long"),
        ("groupBy=owner", "unknown_group_by"),
        # The calendar's ends (date arithmetic overflowed: 500s before).
        ("to=0001-01-01T00:00:00Z", "invalid_billing_window"),
        ("from=9999-12-20T00:00:00Z&to=9999-12-31T00:00:00Z", "invalid_billing_window"),
        ("from=0001-01-01T00:00:00%2B01:00", "invalid_billing_window"),
        ("from=1999-12-31T23:59:59Z", "invalid_billing_window"),
        ("to=9001-01-01", "invalid_billing_window"),
        ("to=", "invalid_billing_window"),  # empty: not "absent"
        ("from=&to=2026-11-01T00:00:00Z", "invalid_billing_window"),
    ],
)
def test_bad_windows_and_groupings(api_client, query, code):
    for path in ("/api/v1/billing/usage", "/api/v1/billing/costs", "/api/v1/billing/usage/export"):
        if "groupBy" in query and path.endswith("export"):
            continue
        answer = api_client.get(f"{path}?{query}")
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, code), (path, query)


def test_bad_export_format(api_client):
    answer = api_client.get("/api/v1/billing/usage/export?format=xlsx")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "unknown_export_format")


def test_anonymous_is_401(db):
    client = APIClient()
    for path in ("billing/usage", "billing/costs", "billing/usage/export", "billing/plans", "billing/plan"):
        assert client.get(f"/api/v1/{path}").status_code == 401, path
    assert client.put("/api/v1/billing/plan", {"plan": "pro"}, format="json").status_code == 401


def test_outsider_sees_only_their_own(outsider_client, boxes):
    one, _ = boxes
    answer = outsider_client.get(f"/api/v1/sandboxes/{one.id}/cost")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "sandbox_not_found")
    assert outsider_client.get(f"/api/v1/billing/usage?{NOVEMBER}").json()["items"] == []
    costs = outsider_client.get(f"/api/v1/billing/costs?{NOVEMBER}").json()
    assert costs["groups"] == [] and costs["total"] == "0.000000"  # on the internal plan: no fee
    export = outsider_client.get(f"/api/v1/billing/usage/export?{NOVEMBER}&format=jsonl")
    assert export.status_code == 200 and streamed_body(export) == b""


@pytest.fixture
def shared(owner):
    """An organization (not personal) of the owner's on pro with one sandbox's November usage."""
    team = org_services.org_create(user=owner, name="Acme")
    assign(team, "pro", "2026-01-01T00:00")
    box = sandbox_maker(owner, template_row())(name="alpha", org=team)
    usage(box, "2026-11-02T10:00", cpu_seconds=400 * 3600)
    return team, box


def test_billing_role_sees_costs_but_cannot_create_sandboxes(owner, shared, make_key):
    org, one = shared
    accountant = get_user_model().objects.create_user(username="accountant", password="pw")
    org_services.member_add(org=org, user_ref="accountant", role="billing", by=owner)
    client = _client(make_key(accountant, ALL_SCOPES, org=org)[1])
    assert client.get(f"/api/v1/billing/costs?{NOVEMBER}").json()["total"] == "28.000000"
    assert client.get(f"/api/v1/sandboxes/{one.id}/cost").status_code == 200
    assert client.put("/api/v1/billing/plan", {"plan": "team"}, format="json").status_code == 200
    refused = client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert refused.json()["error"]["details"]["permission"] == "sandboxes.create"
    assert client.get(f"/api/v1/sandboxes/{one.id}").status_code == 403  # costs, not the sandbox itself


def test_developer_cannot_see_costs_and_scopes_are_needed(owner, shared, make_key):
    org, _ = shared
    developer = get_user_model().objects.create_user(username="dev", password="pw")
    org_services.member_add(org=org, user_ref="dev", role="developer", by=owner)
    client = _client(make_key(developer, ALL_SCOPES, org=org)[1])
    answer = client.get(f"/api/v1/billing/costs?{NOVEMBER}")
    assert (answer.status_code, answer.json()["error"]["details"]["permission"]) == (403, "billing.read")
    assert client.put("/api/v1/billing/plan", {"plan": "pro"}, format="json").status_code == 403
    narrow = _client(make_key(owner, DEFAULT_SCOPES)[1])
    answer = narrow.get("/api/v1/billing/usage")
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "insufficient_scope")
    reader = _client(make_key(owner, ["billing:read"])[1])
    assert reader.get("/api/v1/billing/plan").status_code == 200
    answer = reader.put("/api/v1/billing/plan", {"plan": "pro"}, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "insufficient_scope")


def test_plan_change_to_another_currency_only_at_a_month_start(api_client, org):
    from apps.billing.models import Plan

    Plan.objects.create(slug="euro", name="Euro", currency="EUR", monthly_fee=D("10.00"))
    answer = api_client.put("/api/v1/billing/plan", {"plan": "euro"}, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "plan_currency_change")
    next_month = plans.month_bounds(timezone.now())[1]
    answer = api_client.put(
        "/api/v1/billing/plan", {"plan": "euro", "effectiveFrom": next_month.isoformat()}, format="json"
    )
    assert answer.status_code == 200, answer.content


def test_the_window_helper_refuses_what_date_arithmetic_cannot_do():
    from datetime import UTC, datetime

    from apps.billing import selectors
    from vibebox import exceptions as errors

    for start, end in (
        (None, datetime.min.replace(tzinfo=UTC)),
        (datetime(9999, 12, 20, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)),
    ):
        with pytest.raises(errors.InvalidBillingWindow):
            selectors.window(start, end)
