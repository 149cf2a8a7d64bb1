"""Plans as prices that stay put: a plan in use keeps its prices, fee and currency (the admin shows
them read-only and the service refuses a change), the default plan can be neither deleted nor
renamed and its absence is a clear 503; plan changes of one organization are serialized."""

import threading
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.billing import services
from apps.billing.models import Invoice, InvoiceLine, Plan, PlanAssignment, PlanPrice
from apps.orgs.actors import Actor
from apps.orgs.selectors import permissions_of
from tests.billing.usage_rows import org_of
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_two_changes_for_the_same_moment_at_once_make_one_assignment(owner):
    """Both changes ask for the same instant; without the lock on the account row one of them died on
    the (org, effective_from) unique constraint as a 500. Serialized, the later one replaces the
    earlier (a change drops those at or after its start), both audited."""
    org = org_of(owner)
    actor = Actor(user=owner, org=org, permissions=permissions_of(user=owner, org=org))
    when = timezone.now() + timedelta(days=3)
    start = threading.Barrier(2)
    failures, made = [], []

    def change(slug):
        try:
            start.wait(timeout=60)
            made.append(services.plan_change(actor=actor, plan=slug, effective_from=when))
        except Exception as exc:  # reported below
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(slug,)) for slug in ("pro", "team")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(made) == 2
    assert PlanAssignment.objects.filter(org=org, effective_from=when).count() == 1
    entries = AuditEntry.objects.filter(org_id=org.pk, action="billing.plan_changed").order_by("seq")
    assert len(entries) == 2
    # The second saw the first (its "dropped" names it): the plan before it was read under the lock.
    assert [item["plan"] for item in entries[1].changes["dropped"]] == [entries[0].changes["plan"]["to"]]


# ---- a plan in use keeps what priced the past ----


@pytest.fixture
def admin_client(db, client):  # `db` named: the conftest's seeded_plans looks for it
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root-1234"))
    return client


def _unused_plan(slug="fresh") -> Plan:
    plan = Plan.objects.create(slug=slug, name=slug.title(), currency="USD", monthly_fee=D("5"))
    PlanPrice.objects.create(plan=plan, resource="cpu", unit_price=D("0.05"))
    return plan


def test_what_makes_a_plan_in_use(owner):
    fresh, invoiced, assigned = _unused_plan("fresh"), _unused_plan("invoiced"), _unused_plan("assigned")
    org = org_of(owner)
    PlanAssignment.objects.create(org=org, plan=assigned, effective_from=timezone.now() + timedelta(days=1))
    invoice = Invoice.objects.create(
        org=org, number="VB-2026-000777", period_start=timezone.now() - timedelta(days=30),
        period_end=timezone.now(), currency="USD", subtotal=D(0), tax=D(0), total=D(0),
    )  # fmt: skip
    InvoiceLine.objects.create(
        invoice=invoice, description="x", plan="invoiced", quantity=D(1), unit="month", unit_price=D(5),
        amount=D(5), position=1,
    )  # fmt: skip
    default = Plan.objects.get(slug=settings.VIBEBOX_DEFAULT_PLAN)
    assert [services.plan_in_use(plan) for plan in (fresh, invoiced, assigned, default)] == [False, True, True, True]


def test_the_service_refuses_to_reprice_a_plan_in_use_and_keeps_limits_editable(owner):
    plan = _unused_plan()
    plan.monthly_fee, plan.currency = D("7"), "EUR"
    services.plan_save(plan)  # unused: anything goes
    services.plan_change_check(plan, prices_changed=True)
    PlanAssignment.objects.create(org=org_of(owner), plan=plan, effective_from=timezone.now())
    for field, value in (("monthly_fee", D("8")), ("currency", "USD")):
        changed = Plan.objects.get(pk=plan.pk)
        setattr(changed, field, value)
        with pytest.raises(errors.PlanInUse) as refused:
            services.plan_save(changed)
        assert refused.value.details["fields"] == [field] and refused.value.status == 409
    with pytest.raises(errors.PlanInUse):
        services.plan_change_check(plan, prices_changed=True)
    limits = Plan.objects.get(pk=plan.pk)
    limits.max_running_sandboxes, limits.name = 3, "Renamed for show"
    services.plan_save(limits)
    assert Plan.objects.get(pk=plan.pk).max_running_sandboxes == 3
    assert Plan.objects.get(pk=plan.pk).monthly_fee == D("7")


def _form_data(response) -> dict:
    """What the admin's change form would post back unchanged (editable fields only)."""
    data = {}
    form = response.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        if inline.has_change_permission:
            for item in formset.forms:
                for name in item.fields:
                    value = item[name].value()
                    if value is not None:
                        data[item.add_prefix(name)] = value
    return data


def test_the_admin_shows_a_plan_in_use_read_only_with_a_note(admin_client, owner):
    plan = _unused_plan()
    url = reverse("admin:billing_plan_change", args=[plan.pk])
    page = admin_client.get(url)
    assert 'name="monthly_fee"' in page.content.decode() and 'name="prices-0-unit_price"' in page.content.decode()
    data = _form_data(page)
    data["prices-0-unit_price"] = "0.06"
    answer = admin_client.post(url, data)
    assert answer.status_code == 302, answer.context and (
        answer.context["adminform"].form.errors,
        [f.formset.errors for f in answer.context["inline_admin_formsets"]],
    )  # unused: editable
    assert PlanPrice.objects.get(plan=plan).unit_price == D("0.06")

    PlanAssignment.objects.create(org=org_of(owner), plan=plan, effective_from=timezone.now())
    page = admin_client.get(url)
    body = page.content.decode()
    assert "add a new plan and move organizations to it from a date: the past keeps its prices" in body
    assert 'name="monthly_fee"' not in body and 'name="currency"' not in body
    assert 'name="prices-0-unit_price"' not in body  # the prices inline is read-only
    assert 'name="max_running_sandboxes"' in body  # limits act from now on: editable
    data = _form_data(page)
    data.update({"max_running_sandboxes": "4", "monthly_fee": "99"})  # a posted fee is ignored (read-only)
    answer = admin_client.post(url, data)
    assert answer.status_code == 302, answer.context and answer.context["errors"]
    plan.refresh_from_db()
    assert (plan.max_running_sandboxes, plan.monthly_fee) == (4, D("5"))
    # Prices posted anyway (a crafted request) are refused by the guard, nothing changes.
    data.update({"prices-0-id": PlanPrice.objects.get(plan=plan).pk, "prices-0-plan": plan.pk,
                 "prices-0-resource": "cpu", "prices-0-unit_price": "0.01", "prices-0-included": "0"})  # fmt: skip
    admin_client.post(url, data)
    assert PlanPrice.objects.get(plan=plan).unit_price == D("0.06")


def test_the_default_plan_cannot_be_deleted_or_renamed(admin_client):
    default = Plan.objects.get(slug=settings.VIBEBOX_DEFAULT_PLAN)
    assert admin_client.get(reverse("admin:billing_plan_delete", args=[default.pk])).status_code == 403
    page = admin_client.get(reverse("admin:billing_plan_change", args=[default.pk]))
    assert 'name="slug"' not in page.content.decode()
    renamed = Plan.objects.get(pk=default.pk)
    renamed.slug = "gone"
    with pytest.raises(errors.PlanInUse):
        services.plan_save(renamed)
    with pytest.raises(errors.PlanInUse):
        services.plan_delete_check(default)
    # The changelist's bulk delete refuses a selection holding it.
    fresh = _unused_plan()
    answer = admin_client.post(
        "/admin/billing/plan/", {"action": "delete_selected", "_selected_action": [default.pk, fresh.pk], "post": "yes"}
    )
    assert answer.status_code == 403
    assert Plan.objects.filter(pk__in=[default.pk, fresh.pk]).count() == 2


def test_a_missing_default_plan_is_a_clear_503(owner, api_client, caplog):
    Plan.objects.filter(slug=settings.VIBEBOX_DEFAULT_PLAN).delete()
    for path in ("billing/costs", "billing/plan"):  # (usage is not priced: it needs no plan)
        answer = api_client.get(f"/api/v1/{path}")
        assert (answer.status_code, answer.json()["error"]["code"]) == (503, "billing_not_configured"), answer.content
    assert "VIBEBOX_DEFAULT_PLAN" in caplog.text
    client = Client()
    client.force_login(owner)
    page = client.get("/billing/")
    assert page.status_code == 503 and "billing_not_configured" in page.content.decode()
