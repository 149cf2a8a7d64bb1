"""Invoices (apps/billing/invoices.py, pdf.py, the invoice endpoints): closing a month once,
numbers without gaps or duplicates under concurrency, cents rounded half up in one place, the tax,
the beat pass, the PDF's text (pdftotext) and the endpoints' access rules."""

import datetime as dt
import subprocess
import threading
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.billing import invoices, pdf
from apps.billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    OrgBilling,
    Plan,
    PlanAssignment,
    PlanPrice,
    Resource,
    UsageRecord,
)
from apps.keys.scopes import SANDBOXES_READ
from apps.marketplace.models import Template
from apps.orgs.models import Membership
from apps.orgs.services import org_create, personal_org_ensure
from apps.sandboxes.models import Sandbox

UTC = dt.UTC
MONTH = dt.datetime(2026, 10, 1, tzinfo=UTC)  # the month closed in these tests
NEXT = dt.datetime(2026, 11, 1, tzinfo=UTC)


def plan(slug="inv-pro", fee="10.00", cpu_price="0.05", currency="USD") -> Plan:
    made = Plan.objects.create(slug=slug, name=slug, monthly_fee=Decimal(fee), currency=currency, public=False)
    PlanPrice.objects.create(plan=made, resource=Resource.CPU, unit_price=Decimal(cpu_price), included=Decimal(0))
    return made


def on_plan(org, plan_row, since=dt.datetime(2026, 1, 1, tzinfo=UTC)) -> None:
    PlanAssignment.objects.create(org=org, plan=plan_row, effective_from=since)


def template() -> Template:
    return Template.objects.get_or_create(
        name="inv-tpl", defaults={"display_name": "Invoice tests", "image": "vibebox/inv:1", "user": "sandbox"}
    )[0]


def usage(org, user, *, hour: dt.datetime, cpu_seconds: int) -> UsageRecord:
    sandbox = Sandbox.objects.create(
        owner=user,
        org=org,
        template=template(),
        name=f"inv-{Sandbox.objects.count()}",
        image="x",
        status="stopped",
        cpu=1,
        memory=1 << 28,
    )
    return UsageRecord.objects.create(
        org=org, sandbox=sandbox, template="inv-tpl", hour=hour, cpu_seconds=Decimal(cpu_seconds)
    )


@pytest.fixture
def billed(owner):
    """The owner's personal organization on a 10.00 USD plan with 2.5 vCPU-hours in October
    (2.5 * 0.05 = 0.125: 0.13 rounded half up, 0.12 with banker's rounding), tax 19 %."""
    org = personal_org_ensure(user=owner)
    on_plan(org, plan())
    usage(org, owner, hour=MONTH + dt.timedelta(days=3, hours=5), cpu_seconds=9000)
    OrgBilling.objects.update_or_create(
        org=org, defaults={"tax_rate": Decimal("0.19"), "billing_email": "ap@example.com"}
    )
    return org


def test_cents_round_half_up_in_one_place():
    assert invoices.cents(Decimal("0.125")) == Decimal("0.13")
    assert invoices.cents(Decimal("0.124999")) == Decimal("0.12")
    assert invoices.cents(Decimal("2.675")) == Decimal("2.68")  # a float would say 2.67
    assert invoices.cents(Decimal("-0.125")) == Decimal("-0.13")


def test_closing_a_month_writes_rounded_lines_tax_and_totals(billed):
    invoice, created = invoices.invoice_close(org=billed, period_start=MONTH + dt.timedelta(days=9))
    assert created
    assert (invoice.period_start, invoice.period_end) == (MONTH, NEXT)
    assert invoice.number == "VB-2026-000001" and invoice.currency == "USD"
    lines = list(invoice.lines.order_by("position"))
    by_resource = {line.resource: line for line in lines}
    assert by_resource[Resource.CPU].amount == Decimal("0.13")
    assert by_resource[Resource.CPU].quantity == Decimal("2.5")
    fee = by_resource[""]
    assert fee.amount == Decimal("10.00") and fee.plan == "inv-pro"
    assert invoice.subtotal == sum(line.amount for line in lines) == Decimal("10.13")
    assert invoice.tax_rate == Decimal("0.19") and invoice.tax == Decimal("1.92")  # 1.9247
    assert invoice.total == Decimal("12.05") and invoice.status == InvoiceStatus.OPEN
    entry = AuditEntry.objects.get(action="invoice.closed", target_id=invoice.pk)
    assert entry.org_id == billed.pk and entry.changes["total"] == "12.05" and entry.actor == "system"


def test_closing_again_changes_nothing(billed, owner):
    first, _ = invoices.invoice_close(org=billed, period_start=MONTH)
    before = (Invoice.objects.count(), InvoiceLine.objects.count(), AuditEntry.objects.count())
    usage(billed, owner, hour=MONTH + dt.timedelta(days=20), cpu_seconds=36000)  # late usage: not re-billed
    again, created = invoices.invoice_close(org=billed, period_start=MONTH + dt.timedelta(days=15))
    assert not created and again.pk == first.pk and again.total == first.total
    assert (Invoice.objects.count(), InvoiceLine.objects.count(), AuditEntry.objects.count()) == before


def test_the_tax_rate_comes_from_the_account_else_the_setting(billed, settings):
    OrgBilling.objects.filter(org=billed).update(tax_rate=None)
    settings.VIBEBOX_TAX_RATE = "0.2"
    invoice, _ = invoices.invoice_close(org=billed, period_start=MONTH)
    assert invoice.tax_rate == Decimal("0.2") and invoice.tax == Decimal("2.03")  # 2.026
    assert invoice.total == Decimal("12.16")
    for bad in ("x", "1", "-0.1"):
        settings.VIBEBOX_TAX_RATE = bad
        with pytest.raises(ImproperlyConfigured):
            invoices.default_tax_rate()
    settings.VIBEBOX_TAX_RATE = "0"
    assert invoices.default_tax_rate() == 0


def test_numbers_run_per_year_without_gaps(owner):
    fee_plan = plan(cpu_price="0")
    orgs = [org_create(user=owner, name=f"Numbered {i}") for i in range(3)]
    for org in orgs:
        on_plan(org, fee_plan)
    numbers = [invoices.invoice_close(org=org, period_start=MONTH)[0].number for org in orgs]
    assert numbers == ["VB-2026-000001", "VB-2026-000002", "VB-2026-000003"]
    december = invoices.invoice_close(org=orgs[0], period_start=dt.datetime(2026, 12, 1, tzinfo=UTC))[0]
    january = invoices.invoice_close(org=orgs[0], period_start=dt.datetime(2027, 1, 1, tzinfo=UTC))[0]
    assert (december.number, january.number) == ("VB-2026-000004", "VB-2027-000001")


@pytest.mark.django_db(transaction=True)
def test_concurrent_closers_make_one_invoice_per_org_and_consecutive_numbers(owner):
    fee_plan = plan(cpu_price="0")
    orgs = [org_create(user=owner, name=f"Racing {i}") for i in range(6)]
    for org in orgs:
        on_plan(org, fee_plan)
    start = threading.Barrier(len(orgs) * 2)
    failures = []

    def close(org):
        try:
            start.wait(timeout=60)
            invoices.invoice_close(org=org, period_start=MONTH)
        except Exception as exc:  # reported below
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=close, args=(org,)) for org in orgs for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    made = Invoice.objects.filter(period_start=MONTH)
    assert sorted(made.values_list("org_id", flat=True)) == sorted(org.pk for org in orgs)
    assert sorted(made.values_list("number", flat=True)) == [f"VB-2026-{n:06d}" for n in range(1, 7)]
    assert AuditEntry.objects.filter(action="invoice.closed").count() == 6


def test_a_month_with_nothing_to_pay_is_paid_at_once(owner):
    org = personal_org_ensure(user=owner)
    on_plan(org, plan(fee="0", cpu_price="0"))
    usage(org, owner, hour=MONTH, cpu_seconds=60)
    invoice, _ = invoices.invoice_close(org=org, period_start=MONTH)
    assert invoice.total == 0 and invoice.status == InvoiceStatus.PAID and invoice.paid_at


def test_the_beat_pass_closes_last_month_for_orgs_with_usage_or_a_fee(billed, owner, outsider, settings):
    idle = personal_org_ensure(user=outsider)  # the default plan, no usage: no invoice
    fee_only = org_create(user=owner, name="Fee only")
    on_plan(fee_only, plan(slug="inv-fee", fee="5.00"))
    settings.VIBEBOX_INVOICE_CLOSE_DELAY = 7200
    assert invoices.close_due_invoices(now=NEXT + dt.timedelta(hours=1)) == []  # too early: rollups may lag
    made = invoices.close_due_invoices(now=NEXT + dt.timedelta(hours=3))
    assert sorted(invoice.org_id for invoice in made) == sorted([billed.pk, fee_only.pk])
    assert not Invoice.objects.filter(org=idle).exists()
    assert invoices.close_due_invoices(now=NEXT + dt.timedelta(hours=4)) == []  # closed once
    assert Invoice.objects.get(org=fee_only).total == Decimal("5.00")


# ---- The PDF ----


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_the_pdf_says_what_the_invoice_says(billed, tmp_path):
    billed.name = "Acme <b>Labs</b> & Co"
    billed.save(update_fields=["name"])
    invoice, _ = invoices.invoice_close(org=billed, period_start=MONTH)
    data = pdf.invoice_pdf(invoice)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data, tmp_path)
    for expected in (
        "Invoice",
        "VB-2026-000001",
        "2026-10-01 to 2026-11-01",
        "Acme <b>Labs</b> & Co",  # text, never markup
        billed.slug,
        "ap@example.com",
        "Subtotal",
        "10.13 USD",
        "Tax (19 %)",
        "1.92 USD",
        "12.05 USD",
        "0.13",
        "10.00",
        "OPEN",
    ):
        assert expected in text, (expected, text)
    for line in invoice.lines.all():
        assert line.description.split()[0] in text


# ---- The endpoints ----


@pytest.fixture
def closed(billed):
    return invoices.invoice_close(org=billed, period_start=MONTH)[0]


def test_owner_lists_reads_and_downloads_invoices(api_client, closed, tmp_path):
    listed = api_client.get("/api/v1/billing/invoices")
    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == closed.pk and row["number"] == "VB-2026-000001"
    assert (row["subtotal"], row["tax"], row["total"], row["taxRate"]) == ("10.13", "1.92", "12.05", "0.1900")
    assert row["status"] == "open" and row["pdfUrl"] == f"/api/v1/billing/invoices/{closed.pk}.pdf"
    assert api_client.get("/api/v1/billing/invoices?status=paid").json()["count"] == 0

    detail = api_client.get(f"/api/v1/billing/invoices/{closed.pk}")
    assert detail.status_code == 200
    lines = detail.json()["lines"]
    assert [line["position"] for line in lines] == list(range(1, len(lines) + 1))
    assert sum(Decimal(line["amount"]) for line in lines) == Decimal("10.13")

    download = api_client.get(f"/api/v1/billing/invoices/{closed.pk}.pdf", HTTP_ACCEPT="application/pdf")
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == 'attachment; filename="VB-2026-000001.pdf"'
    assert "12.05 USD" in pdf_text(download.content, tmp_path)


def test_another_orgs_invoice_is_a_404(outsider_client, closed):
    assert outsider_client.get("/api/v1/billing/invoices").json()["count"] == 0
    for path in (f"/api/v1/billing/invoices/{closed.pk}", f"/api/v1/billing/invoices/{closed.pk}.pdf"):
        response = outsider_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "invoice_not_found"


def test_anonymous_is_a_401(closed):
    for path in (
        "/api/v1/billing/invoices",
        f"/api/v1/billing/invoices/{closed.pk}",
        f"/api/v1/billing/invoices/{closed.pk}.pdf",
    ):
        response = APIClient().get(path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated", path


def test_members_without_billing_read_and_keys_without_the_scope_are_refused(closed, billed, owner, client_for):
    developer = get_user_model().objects.create_user(username="dev", password="pw")
    Membership.objects.create(org=billed, user=developer, role="developer")
    response = client_for(developer, org=billed).get(f"/api/v1/billing/invoices/{closed.pk}")
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "billing.read"
    assert client_for(developer, org=billed).get("/api/v1/billing/invoices").status_code == 403
    accountant = get_user_model().objects.create_user(username="acct", password="pw")
    Membership.objects.create(org=billed, user=accountant, role="billing")
    assert client_for(accountant, org=billed).get(f"/api/v1/billing/invoices/{closed.pk}.pdf").status_code == 200
    narrow = client_for(owner, [SANDBOXES_READ]).get("/api/v1/billing/invoices")
    assert narrow.status_code == 403 and narrow.json()["error"]["code"] == "insufficient_scope"


def test_a_bad_status_filter_is_a_400(api_client, closed):
    response = api_client.get("/api/v1/billing/invoices?status=unpaid")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
