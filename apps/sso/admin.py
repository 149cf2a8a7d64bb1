from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import SsoConnection, SsoDomain


class SsoDomainInline(admin.TabularInline):
    """An operator may set verified_at by hand (a domain whose DNS they vouch for)."""

    model = SsoDomain
    extra = 0
    fields = ["domain", "verified_at", "token"]
    readonly_fields = ["token"]


@admin.register(SsoConnection)
class SsoConnectionAdmin(AuditedAdmin):
    list_display = ["org", "protocol", "default_role", "sso_required", "enabled", "updated_at"]
    search_fields = ["org__slug", "domains__domain"]
    raw_id_fields = ["org", "app"]
    inlines = [SsoDomainInline]
