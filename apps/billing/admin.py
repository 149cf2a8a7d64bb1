"""Billing in the admin: operators edit plans (prices inline), assign plans, and set an
organization's overrides; usage records are read-only (the rollup writes them). Changes to an
organization's assignment or account go into its audit chain (AuditedAdmin)."""

from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import OrgBilling, Plan, PlanAssignment, PlanPrice, UsageRecord


class PlanPriceInline(admin.TabularInline):
    model = PlanPrice
    extra = 0


@admin.register(Plan)
class PlanAdmin(AuditedAdmin):
    """A change applies to usage from then on (costs are computed with the plan's prices now);
    closed invoices keep their lines."""

    list_display = ["slug", "name", "currency", "monthly_fee", "public", "max_running_sandboxes", "monthly_budget"]
    list_filter = ["public", "currency"]
    search_fields = ["slug", "name"]
    inlines = [PlanPriceInline]


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
