from django.contrib import admin

from .models import Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "version", "image", "language", "built_in", "is_active")
    list_filter = ("built_in", "is_active", "language")
    search_fields = ("name", "display_name")
