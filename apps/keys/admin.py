from django.contrib import admin

from .models import ApiKey, ApiKeyUsage


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    # key_hash is deliberately absent: the admin never shows key material.
    list_display = ("name", "display", "user", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("key_prefix",)
    search_fields = ("name", "display", "user__username")
    fields = ("id", "user", "name", "display", "key_prefix", "scopes", "rate_limit", "expires_at", "revoked_at")
    readonly_fields = ("id", "user", "display", "key_prefix")

    def has_add_permission(self, request):  # keys are made by the API or `createapikey`
        return False


@admin.register(ApiKeyUsage)
class ApiKeyUsageAdmin(admin.ModelAdmin):
    list_display = ("key", "day", "requests")
    list_filter = ("day",)
