"""Billing in the admin: plans with their prices inline, assignments, accounts; usage records
read-only; an assignment made in the admin is audited in the organization's chain; invoices
read-only with their lines, and the "void" action (audited, unpaid invoices only)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.billing.models import Invoice, InvoiceLine, InvoiceStatus, Plan, PlanAssignment
from tests.billing.usage_rows import org_of, sandbox_maker, template_row, usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root-1234"))
    return client


def test_billing_admin_pages(admin_client, owner):
    record = usage(sandbox_maker(owner, template_row())(), "2026-11-02T10:00", cpu_seconds=60)
    pro = Plan.objects.get(slug="pro")
    for url in (
        "/admin/billing/plan/",
        reverse("admin:billing_plan_change", args=[pro.pk]),
        "/admin/billing/planassignment/",
        "/admin/billing/orgbilling/",
        "/admin/billing/usagerecord/",
        reverse("admin:billing_usagerecord_change", args=[record.pk]),
    ):
        assert admin_client.get(url).status_code == 200, url
    change = admin_client.get(reverse("admin:billing_plan_change", args=[pro.pk])).content.decode()
    assert "prices-TOTAL_FORMS" in change and 'value="0.040000"' in change  # the prices inline
    assert admin_client.get("/admin/billing/usagerecord/add/").status_code == 403
    usage_page = admin_client.get(reverse("admin:billing_usagerecord_change", args=[record.pk])).content.decode()
    assert 'name="cpu_seconds"' not in usage_page  # read-only


def test_an_assignment_made_in_the_admin_is_audited(admin_client, owner):
    org = org_of(owner)
    team = Plan.objects.get(slug="team")
    answer = admin_client.post(
        "/admin/billing/planassignment/add/",
        {"org": org.pk, "plan": team.pk, "effective_from_0": "2026-12-01", "effective_from_1": "00:00:00"},
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assignment = PlanAssignment.objects.get(org=org)
    assert assignment.plan == team
    assert AuditEntry.objects.filter(org_id=org.pk, action="planassignment.created").exists()


def invoice_row(org, number: str, month: int, status=InvoiceStatus.OPEN) -> Invoice:
    """An invoice as invoices.invoice_close writes one: a fee line and a CPU line."""
    start = dt.datetime(2026, month, 1, tzinfo=dt.UTC)
    invoice = Invoice.objects.create(
        org=org,
        number=number,
        period_start=start,
        period_end=start.replace(month=month + 1),
        currency="USD",
        subtotal=Decimal("10.13"),
        tax_rate=Decimal("0.1900"),
        tax=Decimal("1.92"),
        total=Decimal("12.05"),
        status=status,
    )
    InvoiceLine.objects.create(
        invoice=invoice, position=1, description="Plan fee", plan="pro", quantity=1, unit="month",
        unit_price=Decimal("10"), amount=Decimal("10.00"),
    )  # fmt: skip
    InvoiceLine.objects.create(
        invoice=invoice, position=2, description="CPU time", resource="cpu", plan="pro", quantity=Decimal("2.5"),
        unit="vCPU-hour", unit_price=Decimal("0.05"), amount=Decimal("0.13"),
    )  # fmt: skip
    return invoice


def test_invoice_admin_lists_and_shows_read_only(admin_client, owner):
    invoice = invoice_row(org_of(owner), "VB-2026-900001", 9)
    listing = admin_client.get("/admin/billing/invoice/").content.decode()
    assert "VB-2026-900001" in listing and "2026-09" in listing and "12.05" in listing
    page = admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "CPU time" in body and "vCPU-hour" in body  # the lines inline
    assert 'name="total"' not in body and 'name="status"' not in body and 'name="lines-0-amount"' not in body
    assert admin_client.get("/admin/billing/invoice/add/").status_code == 403
    assert admin_client.get(reverse("admin:billing_invoice_delete", args=[invoice.pk])).status_code == 403
    # A post to the change page changes nothing.
    admin_client.post(reverse("admin:billing_invoice_change", args=[invoice.pk]), {"status": "paid", "total": "0"})
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN and invoice.total == Decimal("12.05")
    assert "delete_selected" not in listing


def test_the_void_action_voids_unpaid_invoices_audited(admin_client, owner):
    org = org_of(owner)
    unpaid = invoice_row(org, "VB-2026-900002", 8)
    failed = invoice_row(org, "VB-2026-900003", 9, status=InvoiceStatus.FAILED)
    paid = invoice_row(org, "VB-2026-900004", 10, status=InvoiceStatus.PAID)
    answer = admin_client.post(
        "/admin/billing/invoice/",
        {"action": "void", "_selected_action": [unpaid.pk, failed.pk, paid.pk]},
        follow=True,
    )
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "2 invoices voided." in text and "1 left as they were" in text
    statuses = dict(Invoice.objects.filter(org=org).values_list("number", "status"))
    assert statuses == {"VB-2026-900002": "void", "VB-2026-900003": "void", "VB-2026-900004": "paid"}
    voided = AuditEntry.objects.filter(org_id=org.pk, action="invoice.voided")
    assert {entry.target_id for entry in voided} == {unpaid.pk, failed.pk}
    assert {entry.actor for entry in voided} == {"root"}
    assert next(iter(voided)).changes["status"] in (["open", "void"], ["failed", "void"])
    assert not AuditEntry.objects.filter(org_id=org.pk, action="invoice.updated").exists()  # one entry each
    # Again: nothing more to void, nothing more audited.
    admin_client.post("/admin/billing/invoice/", {"action": "void", "_selected_action": [unpaid.pk]})
    assert AuditEntry.objects.filter(org_id=org.pk, action="invoice.voided").count() == 2
