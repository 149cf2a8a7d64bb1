"""The audit log in the admin: read-only. AuditedAdmin records every change made through the
admin's forms (which save models directly, not through the services) in the object's chain."""

from django.contrib import admin

from . import services
from .models import AuditEntry


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose additions, changes and deletions go into the audit log too."""

    def _audit(self, obj, verb: str, message) -> None:
        if not services.org_id_of(obj):  # templates, pools: no organization's chain
            return
        changed = message if isinstance(message, list) else [message] if message else []
        kind = services.TARGET_TYPES.get(obj._meta.model_name, obj._meta.model_name)
        services.record(f"{kind}.{verb}", target=obj, changes={"admin": changed})

    def log_addition(self, request, obj, message):
        self._audit(obj, "created", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit(obj, "updated", message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit(obj, "deleted", "")
        return super().log_deletions(request, queryset)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "org_id", "seq", "actor", "source", "action", "target_type", "target_id"]
    list_filter = ["source", "action"]
    search_fields = ["org_id", "actor", "key_id", "action", "target_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
