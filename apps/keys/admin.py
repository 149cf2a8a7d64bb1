from django import forms
from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import ApiKey, ApiKeyUsage
from .services import RATE_PATTERN


class ApiKeyForm(forms.ModelForm):
    def clean_rate_limit(self):
        # The rate is compared when keys create, rotate or revoke keys: it must parse.
        rate = self.cleaned_data["rate_limit"]
        if rate and not RATE_PATTERN.match(rate):
            raise forms.ValidationError("Like '100/min' (periods: s, min, h, day), or empty for the server default.")
        return rate


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    form = ApiKeyForm
    # key_hash is deliberately absent: the admin never shows key material.
    list_display = ("name", "display", "user", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("key_prefix",)
    search_fields = ("name", "display", "user__username")
    fields = (
        "id",
        "user",
        "name",
        "display",
        "key_prefix",
        "scopes",
        "rate_limit",
        "expires_at",
        "revoked_at",
        "sandbox_id",
    )
    readonly_fields = ("id", "user", "display", "key_prefix", "sandbox_id")

    def has_add_permission(self, request):  # keys are made by the API or `createapikey`
        return False


@admin.register(ApiKeyUsage)
class ApiKeyUsageAdmin(AuditedAdmin):
    list_display = ("key", "day", "requests")
    list_filter = ("day",)
