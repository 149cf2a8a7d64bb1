"""Quotas and budgets that hold (issue 24; docs/billing.md, "Quotas and budgets"): every quota
refuses with 402 quota_exceeded {quota, limit, used, requested} and nothing is made; 20 concurrent
creates against 5 running sandboxes leave exactly 5; thresholds write a notice once, a webhook
delivery and an email; a used-up budget pauses the running sandboxes (nothing destroyed) and
refuses new work until it is raised; a frozen payment state refuses new work.

Real sandboxes (Docker), the real database; the organization's limits are set the way staff do,
on its OrgBilling row (the test suite's default plan, `internal`, has none)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from apps.agents.models import ClaudeAsk, ClaudeSetup, ModelUsage
from apps.audit.models import AuditEntry
from apps.billing import plans, quotas, tasks
from apps.billing.models import Notice, OrgBilling, PaymentState, Plan, PlanAssignment
from apps.orgs.models import Membership
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Execution, Sandbox, Snapshot, Status
from apps.sandboxes.services.snapshots import snapshot_delete
from apps.webhooks import signing
from apps.webhooks.models import Delivery, Webhook
from tests.races import concurrent_creates
from tests.ws import Communicator
from vibebox import crypto
from vibebox import exceptions as errors
from vibebox.asgi import application

MIB = 1024**2


@pytest.fixture
def org(owner):
    owner.email = "owner@example.com"
    owner.save(update_fields=["email"])
    return personal_org_ensure(user=owner)


def limit(org, **fields) -> OrgBilling:
    """The organization's overrides, as staff set them in the admin."""
    account, _ = OrgBilling.objects.update_or_create(org=org, defaults=fields)
    return account


def refused(response, quota, *, status=402) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    details = error["details"]
    assert details["quota"] == details["resource"] == quota
    return details


def post(client, path, body=None):
    return client.post(f"/api/v1/sandboxes{path}", body or {}, format="json")


# ---- capacity quotas ----


def test_running_sandboxes_at_create_start_and_resume(api_client, create_sandbox, org):
    limit(org, max_running_sandboxes=2)
    first = create_sandbox()
    second = create_sandbox()
    details = refused(
        api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json"), "max_running_sandboxes"
    )
    assert details == {
        "quota": "max_running_sandboxes",
        "resource": "max_running_sandboxes",
        "limit": 2,
        "used": 2,
        "requested": 1,
    }
    assert Sandbox.objects.filter(org=org).count() == 2  # nothing made for the refused create
    stopped = create_sandbox(autoStart=False)  # a stopped sandbox runs nothing: it fits
    refused(post(api_client, f"/{stopped['id']}/start"), "max_running_sandboxes")
    assert Sandbox.objects.get(pk=stopped["id"]).status == Status.STOPPED
    # a paused sandbox does not count; resuming it needs room again
    assert post(api_client, f"/{first['id']}/pause").status_code == 200
    assert post(api_client, f"/{stopped['id']}/start").status_code == 200
    refused(post(api_client, f"/{first['id']}/resume"), "max_running_sandboxes")
    assert Sandbox.objects.get(pk=first["id"]).status == Status.PAUSED
    # exec with autoResume asks for the resume too
    response = post(api_client, f"/{first['id']}/exec", {"command": "true", "autoResume": True})
    refused(response, "max_running_sandboxes")
    assert post(api_client, f"/{second['id']}/stop").status_code == 200
    assert post(api_client, f"/{first['id']}/resume").status_code == 200


def test_vcpus_and_memory_of_running_sandboxes(api_client, create_sandbox, org):
    limit(org, max_vcpus=Decimal("1.5"), max_memory_bytes=512 * MIB)
    create_sandbox(resources={"cpu": 1, "memory": "256m"})
    details = refused(
        api_client.post("/api/v1/sandboxes", {"template": "python-3", "resources": {"cpu": 1}}, format="json"),
        "max_vcpus",
    )
    assert (details["limit"], details["used"], details["requested"]) == (1.5, 1.0, 1.0)
    details = refused(
        api_client.post(
            "/api/v1/sandboxes", {"template": "python-3", "resources": {"cpu": 0.5, "memory": "512m"}}, format="json"
        ),
        "max_memory_bytes",
    )
    assert (details["limit"], details["used"], details["requested"]) == (512 * MIB, 256 * MIB, 512 * MIB)
    create_sandbox(resources={"cpu": 0.5, "memory": "256m"})  # fits exactly
    create_sandbox(resources={"cpu": 2, "memory": "1g"}, autoStart=False)  # stopped: holds no CPU or memory


def test_storage_counts_disk_sizes_of_live_sandboxes(api_client, create_sandbox, org):
    limit(org, max_storage_bytes=100 * MIB)
    first = create_sandbox(resources={"disk": "64m"}, autoStart=False)
    body = {"template": "python-3", "resources": {"disk": "64m"}, "autoStart": False}
    details = refused(api_client.post("/api/v1/sandboxes", body, format="json"), "max_storage_bytes")
    assert (details["limit"], details["used"], details["requested"]) == (100 * MIB, 64 * MIB, 64 * MIB)
    assert api_client.delete(f"/api/v1/sandboxes/{first['id']}").status_code == 204  # frees its disk
    create_sandbox(**body)


def test_snapshots(api_client, create_sandbox, org, settings, tmp_path):
    settings.VIBEBOX_SNAPSHOT_DIR = tmp_path
    limit(org, max_snapshots=1)
    sandbox = create_sandbox()
    try:
        assert post(api_client, f"/{sandbox['id']}/snapshots").status_code == 201
        details = refused(post(api_client, f"/{sandbox['id']}/snapshots"), "max_snapshots")
        assert (details["limit"], details["used"], details["requested"]) == (1, 1, 1)
        assert Snapshot.objects.filter(org=org).count() == 1
    finally:
        for snapshot in Snapshot.objects.all():
            snapshot_delete(snapshot=snapshot)


# ---- monthly quotas and thresholds ----


def _webhook(org) -> Webhook:
    return Webhook.objects.create(
        org=org,
        url="http://127.0.0.1:9/hook",
        events=["billing.threshold_reached"],
        secret=crypto.encrypt(signing.new_secret()),
    )


def _minutes(sandbox_id: str, minutes: float) -> None:
    """Commands that ran `minutes` this month (as the executions the server records)."""
    Execution.objects.create(
        sandbox_id=sandbox_id,
        kind=Execution.Kind.EXEC,
        command="make",
        status=Execution.Status.COMPLETED,
        exit_code=0,
        duration_ms=int(minutes * 60000),
        finished_at=timezone.now(),
    )


@pytest.mark.django_db(transaction=True)
def test_execution_minutes_thresholds_webhook_email_then_refusal(api_client, create_sandbox, org, mailoutbox):
    billing_member = get_user_model().objects.create_user(username="payer", email="payer@example.com")
    developer = get_user_model().objects.create_user(username="dev", email="dev@example.com")
    Membership.objects.create(org=org, user=billing_member, role="billing")
    Membership.objects.create(org=org, user=developer, role="developer")
    limit(org, execution_minutes_per_month=10, billing_email="accounts@example.com")
    hook = _webhook(org)
    sandbox = create_sandbox()
    _minutes(sandbox["id"], 8.5)
    assert post(api_client, f"/{sandbox['id']}/exec", {"command": "true"}).json()["exitCode"] == 0

    # 80 %: at the refusal point (this exec) a notice, its webhook delivery, its email; once
    [notice] = Notice.objects.filter(org=org)
    assert (notice.quota, notice.percent, notice.limit) == ("execution_minutes_per_month", 80, 10)
    assert notice.period == plans.month_bounds(timezone.now())[0].date()
    [delivery] = Delivery.objects.filter(webhook=hook)
    assert delivery.payload["type"] == "billing.threshold_reached"
    data = delivery.payload["data"]
    assert (data["org"], data["quota"], data["percent"], data["limit"]) == (
        org.pk,
        "execution_minutes_per_month",
        80,
        10.0,
    )
    assert 8.5 <= data["used"] < 9 and data["period"] == timezone.now().strftime("%Y-%m")
    [mail] = mailoutbox
    assert sorted(mail.to) == ["accounts@example.com", "owner@example.com", "payer@example.com"]
    assert "80% of execution minutes this month" in mail.subject
    assert post(api_client, f"/{sandbox['id']}/exec", {"command": "true"}).status_code == 200
    tasks.check_quotas()  # the beat pass finds nothing new
    assert Notice.objects.filter(org=org).count() == 1 and len(mailoutbox) == 1

    # 100 %: refused, nothing run; the beat pass writes the 100 % notice
    _minutes(sandbox["id"], 2)
    executions = Execution.objects.count()
    details = refused(post(api_client, f"/{sandbox['id']}/exec", {"command": "true"}), "execution_minutes_per_month")
    assert details["limit"] == 10.0 and details["used"] >= 10.5 and details["requested"] is None
    assert Execution.objects.count() == executions
    refused(post(api_client, f"/{sandbox['id']}/execute", {"code": "print(1)"}), "execution_minutes_per_month")
    tasks.check_quotas()
    assert sorted(Notice.objects.filter(org=org).values_list("percent", flat=True)) == [80, 100]
    assert Delivery.objects.filter(webhook=hook).count() == 2 and len(mailoutbox) == 2
    assert "100% of execution minutes this month" in mailoutbox[1].subject
    # last month's minutes do not count
    Execution.objects.filter(sandbox_id=sandbox["id"]).update(started_at=timezone.now() - timedelta(days=40))
    assert post(api_client, f"/{sandbox['id']}/exec", {"command": "true"}).status_code == 200


def test_model_spend_refuses_a_claude_ask(api_client, create_sandbox, org):
    limit(org, model_spend_per_month=Decimal("5.00"))
    sandbox = create_sandbox()
    row = Sandbox.objects.get(pk=sandbox["id"])
    ClaudeSetup.objects.create(sandbox=row, version="test", home="/home/user", token_hash="q" * 64)
    ModelUsage.objects.create(sandbox=row, model="claude", path="/v1/messages", status=200, cost_usd=Decimal("3.5"))
    ModelUsage.objects.create(  # paid with the caller's own Anthropic key: not VibeBox's spend
        sandbox=row, model="claude", path="/v1/messages", status=200, cost_usd=Decimal("50"), own_key=True
    )
    ModelUsage.objects.create(sandbox=row, model="claude", path="/v1/messages", status=200, cost_usd=Decimal("1.5"))
    details = refused(post(api_client, f"/{sandbox['id']}/claude/ask", {"prompt": "hello"}), "model_spend_per_month")
    assert (details["limit"], details["used"], details["requested"]) == ("5.00", "5.00", None)
    assert not ClaudeAsk.objects.filter(sandbox=row).exists()  # nothing started


# ---- the race ----


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_creates_against_five_leave_five(owner, templates, cleanup_sandbox_ids):
    org = personal_org_ensure(user=owner)
    limit(org, max_running_sandboxes=5)
    outcomes = concurrent_creates(owner, 20, cleanup_sandbox_ids, template="python-3")
    assert outcomes == ["created"] * 5 + ["quota_exceeded"] * 15
    assert Sandbox.objects.filter(org=org).count() == 5
    assert Sandbox.objects.filter(org=org, status=Status.RUNNING).count() == 5


# ---- the budget ----


def _costly_plan(org, fee="1000.00") -> Plan:
    """A plan with a monthly fee, from the month's start: the month to date costs its share."""
    plan = Plan.objects.create(slug="costly", name="Costly", monthly_fee=Decimal(fee), public=False)
    PlanAssignment.objects.create(org=org, plan=plan, effective_from=plans.month_bounds(timezone.now())[0])
    return plan


@pytest.mark.django_db(transaction=True)
def test_budget_used_up_pauses_running_sandboxes_and_refuses_until_raised(api_client, create_sandbox, org, mailoutbox):
    from apps.billing import costs

    _costly_plan(org)
    hook = Webhook.objects.create(
        org=org, url="http://127.0.0.1:9/hook", events=["sandbox.paused", "billing.threshold_reached"],
        secret=crypto.encrypt(signing.new_secret()),
    )  # fmt: skip
    running = [create_sandbox(), create_sandbox()]
    stopped = create_sandbox(autoStart=False)
    spent = costs.month_to_date(org)
    assert spent > Decimal("0.01")
    limit(org, monthly_budget=Decimal("0.01"))

    result = tasks.check_quotas()
    assert result["paused"] == 2
    for sandbox in running:
        row = Sandbox.objects.get(pk=sandbox["id"])
        assert row.status == Status.PAUSED and row.status_reason == quotas.BUDGET_NOTE  # paused, not destroyed
    assert Sandbox.objects.get(pk=stopped["id"]).status == Status.STOPPED
    account = OrgBilling.objects.get(org=org)
    assert account.budget_paused_at is not None
    paused = Delivery.objects.filter(webhook=hook, payload__type="sandbox.paused")
    assert sorted(d.payload["data"]["id"] for d in paused) == sorted(s["id"] for s in running)
    assert {d.payload["data"]["statusReason"] for d in paused} == {quotas.BUDGET_NOTE}
    assert sorted(Notice.objects.filter(org=org, quota="monthly_budget").values_list("percent", flat=True)) == [80, 100]
    actions = list(
        AuditEntry.objects.filter(org_id=org.pk, action__startswith="billing.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["billing.budget_exhausted", "billing.threshold_reached", "billing.threshold_reached"]
    assert any("100% of the monthly budget" in mail.subject for mail in mailoutbox)

    # new work is refused: create, start, resume, exec
    details = refused(api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json"), "monthly_budget")
    assert details["limit"] == "0.01" and Decimal(details["used"]) >= Decimal("0.01")
    refused(post(api_client, f"/{stopped['id']}/start"), "monthly_budget")
    refused(post(api_client, f"/{running[0]['id']}/resume"), "monthly_budget")
    assert tasks.check_quotas()["paused"] == 0  # nothing more to pause, the mark stays
    assert OrgBilling.objects.get(org=org).budget_paused_at == account.budget_paused_at

    # raised: the mark goes, nothing resumes by itself, the user resumes
    limit(org, monthly_budget=Decimal("100000"))
    tasks.check_quotas()
    assert OrgBilling.objects.get(org=org).budget_paused_at is None
    assert AuditEntry.objects.filter(org_id=org.pk, action="billing.budget_released").count() == 1
    assert Sandbox.objects.get(pk=running[0]["id"]).status == Status.PAUSED
    response = post(api_client, f"/{running[0]['id']}/resume")
    assert response.status_code == 200 and response.json()["statusReason"] == ""
    assert post(api_client, f"/{running[0]['id']}/exec", {"command": "true"}).json()["exitCode"] == 0


# ---- payment state ----


def test_a_frozen_payment_state_refuses_new_work(api_client, create_sandbox, org):
    sandbox = create_sandbox()
    limit(org, payment_state=PaymentState.FROZEN)
    details = refused(api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json"), "payment_state")
    assert details["paymentState"] == "frozen"
    refused(post(api_client, f"/{sandbox['id']}/exec", {"command": "true"}), "payment_state")
    assert post(api_client, f"/{sandbox['id']}/stop").status_code == 200  # stopping is not new work
    refused(post(api_client, f"/{sandbox['id']}/start"), "payment_state")
    limit(org, payment_state=PaymentState.PAST_DUE)  # the grace period: still works
    assert post(api_client, f"/{sandbox['id']}/start").status_code == 200


def test_a_restore_asks_like_a_start(api_client, create_sandbox, org, settings, tmp_path):
    """Restoring a snapshot into a stopped or paused sandbox starts a container: the same check as a
    start or a resume (a budget-paused sandbox cannot come back running through a restore)."""
    settings.VIBEBOX_SNAPSHOT_DIR = tmp_path
    sandbox = create_sandbox()
    try:
        snapshot = post(api_client, f"/{sandbox['id']}/snapshots").json()
        assert post(api_client, f"/{sandbox['id']}/pause").status_code == 200
        limit(org, payment_state=PaymentState.FROZEN)
        refused(post(api_client, f"/{sandbox['id']}/restore", {"snapshot": snapshot["id"]}), "payment_state")
        assert Sandbox.objects.get(pk=sandbox["id"]).status == Status.PAUSED  # nothing changed
        limit(org, payment_state=PaymentState.OK)
        restored = post(api_client, f"/{sandbox['id']}/restore", {"snapshot": snapshot["id"]})
        assert restored.status_code == 200 and restored.json()["status"] == "running"
    finally:
        for row in Snapshot.objects.all():
            snapshot_delete(snapshot=row)


def test_the_budget_on_the_request_path_is_read_from_the_beat_pass(org):
    """A command asks for the month to date from the cache the beat's pass fills (one read, not a
    pass over the month's usage); without the pass, the first request computes and caches it."""
    from django.core.cache import cache

    limit(org, monthly_budget=Decimal("5"))
    now = timezone.now()
    cache.delete(quotas.spent_key(org, now))
    quotas.check(org, quotas.Request(action="exec"))  # nothing spent: allowed, and cached
    assert Decimal(cache.get(quotas.spent_key(org, now))) == 0
    cache.set(quotas.spent_key(org, now), "7.50")  # as the beat's pass writes it
    details = refused_check(org)
    assert details["quota"] == "monthly_budget" and Decimal(details["used"]) == Decimal("7.50")
    cache.delete(quotas.spent_key(org, now))


def refused_check(org) -> dict:
    with pytest.raises(errors.QuotaExceeded) as refusal:
        quotas.check(org, quotas.Request(action="exec"))
    return refusal.value.details


def test_a_missing_default_plan_does_not_stop_work(org, settings):
    """The default plan gone (an operator's mistake): the billing pages answer 503
    billing_not_configured, but commands and creates go on under the overrides alone."""
    settings.VIBEBOX_DEFAULT_PLAN = "no-such-plan"
    quotas.check(org, quotas.Request(action="exec"))
    limit(org, max_running_sandboxes=0)  # the overrides still hold
    with pytest.raises(errors.QuotaExceeded) as refusal:
        quotas.check(org, quotas.Request(action="create", running=1))
    assert refusal.value.details["quota"] == "max_running_sandboxes"


@pytest.mark.django_db(transaction=True)
def test_a_new_terminal_is_work_too(api_key, create_sandbox, org):
    """The WebSocket terminal asks like a command: refused before it is accepted (4000 + 402)."""
    sandbox = create_sandbox()
    limit(org, payment_state=PaymentState.FROZEN)
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {api_key[1]}".encode())]
    terminal = Communicator(application, f"/ws/sandboxes/{sandbox['id']}/terminal", headers=headers)
    assert async_to_sync(terminal.connect)() == (False, 4402)


def test_no_limits_no_refusals(create_sandbox, org):
    """The default (the suite's `internal` plan, no override): nothing is refused."""
    assert all(value is None for value in plans.limits(org).values())
    for _ in range(3):
        create_sandbox()


# ---- GET /api/v1/billing/quotas ----


def test_quotas_endpoint_shows_limits_used_and_percent(api_client, create_sandbox, org, client_for, owner):
    limit(org, max_running_sandboxes=4, max_memory_bytes=1024 * MIB, execution_minutes_per_month=100)
    sandbox = create_sandbox(resources={"memory": "256m"})
    _minutes(sandbox["id"], 25)
    response = api_client.get("/api/v1/billing/quotas")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["plan"] == "internal" and body["paymentState"] == "ok" and body["budgetPausedAt"] is None
    rows = {row["quota"]: row for row in body["quotas"]}
    assert list(rows) == list(OrgBilling.LIMIT_FIELDS)
    assert rows["max_running_sandboxes"] == {
        "quota": "max_running_sandboxes",
        "limit": 4,
        "used": 1,
        "percent": 25.0,
        "period": None,
        "overridden": True,
    }
    assert (rows["max_memory_bytes"]["used"], rows["max_memory_bytes"]["percent"]) == (256 * MIB, 25.0)
    minutes = rows["execution_minutes_per_month"]
    assert (
        minutes["limit"] == 100 and 25 <= minutes["used"] < 26 and minutes["period"] == timezone.now().strftime("%Y-%m")
    )
    assert rows["monthly_budget"] == {
        "quota": "monthly_budget",
        "limit": None,
        "used": "0.00",
        "percent": None,
        "period": timezone.now().strftime("%Y-%m"),
        "overridden": False,
    }
    assert body["notices"] == []

    # a member without billing.read: 403 naming it; a key without billing:read: 403; nobody: 401
    developer = get_user_model().objects.create_user(username="dev")
    Membership.objects.create(org=org, user=developer, role="developer")
    response = client_for(developer, org=org).get("/api/v1/billing/quotas")
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "billing.read"
    response = client_for(owner, ["sandboxes:read"]).get("/api/v1/billing/quotas")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert APIClient().get("/api/v1/billing/quotas").status_code == 401


def test_quotas_endpoint_shows_only_the_callers_organization(outsider_client, create_sandbox, org):
    """Another organization's quotas are never shown: an outsider sees their own (nothing used)."""
    limit(org, max_running_sandboxes=4)
    create_sandbox()
    body = outsider_client.get("/api/v1/billing/quotas").json()
    rows = {row["quota"]: row for row in body["quotas"]}
    assert rows["max_running_sandboxes"]["used"] == 0 and rows["max_running_sandboxes"]["limit"] is None
