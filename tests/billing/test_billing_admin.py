"""Billing in the admin: plans with their prices inline, assignments, accounts; usage records
read-only; an assignment made in the admin is audited in the organization's chain."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.billing.models import Plan, PlanAssignment
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
