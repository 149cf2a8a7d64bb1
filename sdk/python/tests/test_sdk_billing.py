"""Billing through the SDK and the CLI against the live server: usage, costs, the export, a
sandbox's cost, plans and the plan change, invoices and their PDFs; `vibebox usage`, `vibebox
invoices`. Usage records are written into the server's database as the meter's rollup writes them
(the meter is tested in tests/billing), and an invoice is closed there as the beat task closes one."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from decimal import Decimal

import pytest
from conftest import cli
from vibebox_sdk import AsyncVibeBox, VibeBox
from vibebox_sdk.errors import (
    InvoiceNotFoundError,
    NotFoundError,
    PaymentsNotConfiguredError,
    PermissionDeniedError,
    PlanNotFoundError,
    UnknownGroupByError,
    ValidationError,
)


def _shell(server, code: str) -> str:
    return server.manage("shell", "-c", code).strip().splitlines()[-1]


@pytest.fixture
def billed(server, vb: VibeBox, sandbox):
    """The sandbox with one usage record this hour (30 vCPU-hours, 1 GiB sent), its organization on
    the free plan since the month began; back on its default plan afterwards."""
    code = f"""
from decimal import Decimal
from django.utils import timezone
from apps.billing.models import Plan, PlanAssignment, UsageRecord
from apps.sandboxes.models import Sandbox
box = Sandbox.objects.get(pk={sandbox.id!r})
hour = timezone.now().replace(minute=0, second=0, microsecond=0)
# The server's default plan is `internal` (bench/common.py: no prices, no limits): price this month.
PlanAssignment.objects.get_or_create(org=box.org, effective_from=hour.replace(day=1, hour=0),
    defaults=dict(plan=Plan.objects.get(slug="free")))
UsageRecord.objects.update_or_create(sandbox=box, hour=hour, defaults=dict(
    org=box.org, template=box.template.name, cpu_seconds=Decimal(30 * 3600), net_out_bytes=1024**3))
print(box.org_id)
"""
    org_id = _shell(server, code)
    yield sandbox
    _shell(
        server,
        "from apps.billing.models import UsageRecord, PlanAssignment; "
        f"UsageRecord.objects.filter(sandbox_id={sandbox.id!r}).delete(); "
        f"PlanAssignment.objects.filter(org_id={org_id!r}).delete(); print('ok')",
    )


def test_usage_costs_export_and_sandbox_cost(vb: VibeBox, billed):
    used = vb.billing.usage(group_by="sandbox")
    mine = {item["resource"]: item for item in used["items"] if item["key"] == billed.id}
    assert mine["cpu"]["quantity"] == Decimal(30) and mine["cpu"]["unit"] == "vCPU-hour"
    assert mine["network_out"]["quantity"] == Decimal(1)

    costs = vb.billing.costs(group_by="resource")
    assert isinstance(costs["total"], Decimal) and costs["currency"]
    assert costs["total"] == costs["fee"] + sum((group["amount"] for group in costs["groups"]), Decimal(0))
    assert {line["plan"] for line in costs["line_items"]}

    lines = list(vb.billing.export(format="jsonl"))
    rows = [json.loads(line) for line in lines if line]
    assert any(row["sandboxId"] == billed.id and Decimal(row["cpuSeconds"]) == 30 * 3600 for row in rows)
    buffer = io.BytesIO()
    assert vb.billing.export(buffer, format="csv") > 0
    table = list(csv.DictReader(io.StringIO(buffer.getvalue().decode())))
    assert billed.id in {row["sandboxId"] for row in table}

    cost = billed.cost()
    assert cost["sandbox_id"] == billed.id and isinstance(cost["total"], Decimal)
    assert isinstance(cost["rate_per_hour"], Decimal) and cost["rate_per_hour"] > 0  # its hour is metered
    assert vb.billing.sandbox_cost(billed.id)["total"] == cost["total"]


def test_plans_and_plan_change(vb: VibeBox, billed):
    offered = vb.billing.plans()
    assert [plan["slug"] for plan in offered] == ["free", "pro", "team"]
    assert offered[1]["monthly_fee"] == Decimal("20.00")
    changed = vb.billing.change_plan("team")
    assert changed["plan"]["slug"] == "team" and changed["limits"]["max_running_sandboxes"] == 50
    assert vb.billing.plan()["plan"]["slug"] == "team"
    with pytest.raises(PlanNotFoundError) as missing:
        vb.billing.change_plan("platinum")
    assert missing.value.code == "plan_not_found" and isinstance(missing.value, NotFoundError)
    with pytest.raises(UnknownGroupByError) as bad:
        vb.billing.costs(group_by="owner")
    assert bad.value.code == "unknown_group_by" and isinstance(bad.value, ValidationError)


def test_outsider_and_scopes(server, billed, outsider_key):
    with VibeBox(api_key=outsider_key, base_url=server.url) as other, pytest.raises(NotFoundError):
        other.billing.sandbox_cost(billed.id)
    narrow = server.create_key("billing-narrow", "sandboxes:read")
    with VibeBox(api_key=narrow, base_url=server.url) as limited, pytest.raises(PermissionDeniedError) as refused:
        limited.billing.costs()
    assert refused.value.code == "insufficient_scope"


def test_async_billing(server, billed):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            costs = await vb.billing.costs(group_by="day")
            assert isinstance(costs["total"], Decimal)
            lines = [line async for line in vb.billing.export(format="csv")]
            assert lines[0].startswith("hour,sandboxId,")
            box = await vb.get(billed.id)
            assert (await box.cost())["sandbox_id"] == billed.id

    asyncio.run(scenario())


def test_cli_usage(cli_env, billed):
    by_sandbox = cli(cli_env, "usage", "--by", "sandbox", "--json")
    assert by_sandbox.returncode == 0, by_sandbox.stderr
    body = json.loads(by_sandbox.stdout)
    assert body["group_by"] == "sandbox" and billed.id in {group["key"] for group in body["groups"]}
    table = cli(cli_env, "usage")
    assert table.returncode == 0, table.stderr
    assert "RESOURCE" in table.stdout and "cpu" in table.stdout and "total" in table.stdout
    days = cli(cli_env, "usage", "--by", "day", "--from", "2026-01-01")
    assert days.returncode == 0 and "DAY" in days.stdout
    bad = cli(cli_env, "usage", "--from", "2026-12-01T00:00:00Z", "--to", "2026-11-01T00:00:00Z")
    assert bad.returncode != 0 and "invalid_billing_window" in bad.stderr + bad.stdout


@pytest.fixture
def invoiced(server, billed):
    """The billed sandbox's organization with this month closed into an invoice (as the beat task's
    invoices.invoice_close closes a month); the invoice is deleted afterwards."""
    code = f"""
from apps.billing import invoices, plans
from apps.sandboxes.models import Sandbox
from django.utils import timezone
box = Sandbox.objects.get(pk={billed.id!r})
invoice, made = invoices.invoice_close(org=box.org, period_start=plans.month_bounds(timezone.now())[0])
print(invoice.pk)
"""
    invoice_id = _shell(server, code)
    yield invoice_id
    _shell(
        server,
        f"from apps.billing.models import Invoice; Invoice.objects.filter(pk={invoice_id!r}).delete(); print('ok')",
    )


def test_invoices_list_get_and_pdf(vb: VibeBox, invoiced, tmp_path, server, outsider_key):
    listed = vb.billing.invoices()
    mine = next(invoice for invoice in listed if invoice["id"] == invoiced)
    assert mine["number"].startswith("VB-") and isinstance(mine["total"], Decimal)
    assert mine["total"] == mine["subtotal"] + mine["tax"] and mine["pdf_url"].endswith(f"{invoiced}.pdf")
    assert invoiced in {invoice["id"] for invoice in vb.billing.invoices(status=mine["status"])}
    other = "void" if mine["status"] != "void" else "paid"
    assert invoiced not in {invoice["id"] for invoice in vb.billing.invoices(status=other)}
    assert len(vb.billing.invoices(limit=1)) == 1

    invoice = vb.billing.invoice(invoiced)
    assert invoice["number"] == mine["number"] and invoice["lines"]
    assert sum((line["amount"] for line in invoice["lines"]), Decimal(0)) == invoice["subtotal"]
    assert {line["resource"] for line in invoice["lines"]} >= {"cpu"}

    pdf = vb.billing.invoice_pdf(invoiced)
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
    path = tmp_path / "invoice.pdf"
    assert vb.billing.invoice_pdf(invoiced, file=path) == len(pdf) == path.stat().st_size
    assert path.read_bytes().startswith(b"%PDF")
    buffer = io.BytesIO()
    assert vb.billing.invoice_pdf(invoiced, file=buffer) == len(pdf)

    with pytest.raises(InvoiceNotFoundError) as missing:
        vb.billing.invoice("inv_doesnotexist00")
    assert missing.value.code == "invoice_not_found" and missing.value.status == 404
    with pytest.raises(InvoiceNotFoundError):
        vb.billing.invoice_pdf("inv_doesnotexist00")
    with VibeBox(api_key=outsider_key, base_url=server.url) as outsider, pytest.raises(InvoiceNotFoundError):
        outsider.billing.invoice(invoiced)
    with pytest.raises(ValidationError):
        vb.billing.invoices(status="late")


def test_checkout_without_payments(vb: VibeBox):
    """The test server has no VIBEBOX_STRIPE_SECRET_KEY: checkout says so, as its typed error."""
    with pytest.raises(PaymentsNotConfiguredError) as off:
        vb.billing.checkout(success_url="https://example.com/done")
    assert off.value.code == "payments_not_configured" and isinstance(off.value, NotFoundError)


def test_async_invoices(server, invoiced):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            listed = await vb.billing.invoices()
            assert invoiced in {invoice["id"] for invoice in listed}
            assert (await vb.billing.invoice(invoiced))["lines"]
            assert (await vb.billing.invoice_pdf(invoiced)).startswith(b"%PDF")
            with pytest.raises(PaymentsNotConfiguredError):
                await vb.billing.checkout()

    asyncio.run(scenario())


def test_cli_invoices(cli_env, invoiced, tmp_path):
    listed = cli(cli_env, "invoices", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = next(invoice for invoice in json.loads(listed.stdout) if invoice["id"] == invoiced)
    table = cli(cli_env, "invoices")
    assert table.returncode == 0, table.stderr
    assert "NUMBER" in table.stdout and mine["number"] in table.stdout and invoiced in table.stdout

    target = tmp_path / "out.pdf"
    saved = cli(cli_env, "invoices", "download", invoiced, "-o", str(target))
    assert saved.returncode == 0, saved.stderr
    assert target.read_bytes().startswith(b"%PDF")
    named = cli(cli_env, "invoices", "download", invoiced, cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert (tmp_path / f"{mine['number']}.pdf").read_bytes().startswith(b"%PDF")
    missing = cli(cli_env, "invoices", "download", "inv_doesnotexist00", "-o", str(tmp_path / "x.pdf"))
    assert missing.returncode != 0 and "invoice_not_found" in missing.stderr + missing.stdout
