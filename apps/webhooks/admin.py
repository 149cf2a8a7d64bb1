from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import Delivery, DeliveryAttempt, Webhook


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin):
    list_display = ("id", "org", "url", "active", "disabled_reason", "created_at")
    list_filter = ("active",)
    search_fields = ("id", "url", "org__slug")
    readonly_fields = ("id", "org", "created_by", "created_at", "last_seq", "lease_until", "lease_owner")
    exclude = ("secret", "previous_secret")


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("at", "status_code", "error", "duration_ms", "response_body")
    fields = readonly_fields


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "webhook", "event", "status", "attempts", "response_status", "created_at")
    list_filter = ("status", "event")
    search_fields = ("id", "event_id", "webhook__id")
    inlines = [AttemptInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
