"""Billing in the admin: operators edit plans (prices inline), assign plans, and set an
organization's overrides; usage records are read-only (the rollup writes them); invoices are
read-only but for the "void" action. Changes to an organization's assignment or account go into
its audit chain (AuditedAdmin), and so does a voided invoice (invoices.invoice_void)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import ngettext

from apps.audit.admin import AuditedAdmin
from vibebox import exceptions as errors

from . import invoices, services
from .models import Invoice, InvoiceLine, OrgBilling, Plan, PlanAssignment, PlanPrice, UsageRecord


class PlanPriceFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        # A read-only inline's forms are not posted (the admin bypasses their validation): only the
        # forms whose fields came with the request count.
        posted = [form for form in self.forms if form.add_prefix("unit_price") in self.data]
        changed = any(form.has_changed() for form in posted) or bool(self.deleted_forms)
        try:
            services.plan_change_check(self.instance, prices_changed=changed)
        except errors.PlanInUse as exc:
            raise ValidationError(exc.message) from None


class PlanPriceInline(admin.TabularInline):
    """Read-only once the plan is in use (services.plan_in_use): its prices priced the past."""

    model = PlanPrice
    formset = PlanPriceFormSet
    extra = 0

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and not (obj is not None and services.plan_in_use(obj))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj is not None and services.plan_in_use(obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and services.plan_in_use(obj))


FROZEN = ("slug", *services.FROZEN_FIELDS)


class PlanForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        candidate = Plan(pk=self.instance.pk, **{f: cleaned.get(f, getattr(self.instance, f)) for f in FROZEN})
        try:
            services.plan_change_check(candidate)
        except errors.PlanInUse as exc:
            raise ValidationError(exc.message) from None
        return cleaned


@admin.register(Plan)
class PlanAdmin(AuditedAdmin):
    """A plan in use (assigned, the default, or named by an invoice line) keeps its prices, fee and
    currency: they show read-only with a note, and services.plan_change_check refuses a change (to
    change a price, add a new plan and move organizations to it from a date). Limits stay editable:
    they act from now on. The default plan cannot be deleted or renamed."""

    form = PlanForm
    list_display = ["slug", "name", "currency", "monthly_fee", "public", "max_running_sandboxes", "monthly_budget"]
    list_filter = ["public", "currency"]
    search_fields = ["slug", "name"]
    inlines = [PlanPriceInline]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and services.plan_in_use(obj):
            fields += list(services.FROZEN_FIELDS)
        if obj is not None and services.plan_is_default(obj):
            fields.append("slug")
        return fields

    def change_view(self, request, object_id, form_url="", extra_context=None):
        plan = self.get_object(request, object_id)
        if request.method == "GET" and plan is not None and services.plan_in_use(plan):
            self.message_user(request, services.FROZEN_NOTE, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and services.plan_is_default(obj))

    def save_model(self, request, obj, form, change):
        services.plan_save(obj)


@admin.register(PlanAssignment)
class PlanAssignmentAdmin(AuditedAdmin):
    list_display = ["org", "plan", "effective_from", "created_by", "created_at"]
    list_filter = ["plan"]
    search_fields = ["org__slug"]
    raw_id_fields = ["org", "created_by"]
    date_hierarchy = "effective_from"


@admin.register(OrgBilling)
class OrgBillingAdmin(AuditedAdmin):
    list_display = ["org", "payment_state", "monthly_budget", "max_running_sandboxes", "budget_paused_at"]
    list_filter = ["payment_state"]
    search_fields = ["org__slug", "billing_email", "stripe_customer_id"]
    raw_id_fields = ["org"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["hour", "org", "sandbox", "template", "cpu_seconds", "memory_gib_seconds", "model_cost_usd"]
    list_filter = ["template"]
    search_fields = ["org__slug", "sandbox__id", "sandbox__name"]
    date_hierarchy = "hour"
    list_select_related = ["org", "sandbox"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = ["position", "description", "resource", "plan", "quantity", "unit", "unit_price", "amount"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(AuditedAdmin):
    """Invoices are what the month's close wrote (invoices.invoice_close): nothing is edited here.
    The one change is the "void" action, for an unpaid invoice that should not be paid."""

    list_display = ["number", "org", "period", "total", "currency", "status", "issued_at", "paid_at"]
    list_filter = ["status", "currency"]
    search_fields = ["number", "org__slug", "stripe_invoice_id"]
    date_hierarchy = "period_start"
    list_select_related = ["org"]
    inlines = [InvoiceLineInline]
    actions = ["void"]

    @admin.display(description="period", ordering="period_start")
    def period(self, invoice):
        return f"{invoice.period_start:%Y-%m}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The change page opens read-only (the view permission); the void action needs this one.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Void the selected unpaid invoices", permissions=["change"])
    def void(self, request, queryset):
        voided = [invoice for invoice in queryset if invoices.invoice_void(invoice=invoice)]
        for invoice in voided:  # the admin's history; the audit entry is invoice_void's (not a second one)
            admin.ModelAdmin.log_change(self, request, invoice, "Voided.")
        if voided:
            self.message_user(
                request,
                ngettext("%d invoice voided.", "%d invoices voided.", len(voided)) % len(voided),
                messages.SUCCESS,
            )
        skipped = queryset.count() - len(voided)
        if skipped:
            self.message_user(
                request,
                f"{skipped} left as they were: only open or failed invoices are voided.",
                messages.WARNING,
            )
