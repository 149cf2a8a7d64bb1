from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import Template


@admin.register(Template)
class TemplateAdmin(AuditedAdmin):
    list_display = ("name", "display_name", "version", "image", "language", "built_in", "is_active")
    list_filter = ("built_in", "is_active", "language")
    search_fields = ("name", "display_name")
