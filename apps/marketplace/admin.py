from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import Review, Submission, Template, TemplateVersion


@admin.register(Template)
class TemplateAdmin(AuditedAdmin):
    list_display = (
        "name",
        "display_name",
        "latest_version",
        "image",
        "visibility",
        "official",
        "featured",
        "is_active",
    )
    list_filter = ("built_in", "official", "visibility", "featured", "is_active", "language")
    search_fields = ("name", "display_name")


@admin.register(TemplateVersion)
class TemplateVersionAdmin(admin.ModelAdmin):
    list_display = ("template", "version", "state", "yanked", "published_at")
    list_filter = ("state", "yanked")
    search_fields = ("template__name", "version")
    readonly_fields = ("template", "version", "image", "image_size", "spec", "changelog", "submission", "published_at")


@admin.register(Submission)
class SubmissionAdmin(AuditedAdmin):
    """Read-only: submissions move only through apps/marketplace/states.py (and reviews through the API)."""

    list_display = ("id", "template_name", "version", "org", "visibility", "state", "failed_step", "created_at")
    list_filter = ("state", "visibility", "failed_step")
    search_fields = ("id", "template_name", "org__slug")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("template", "user", "rating", "updated_at")
    search_fields = ("template__name", "user__username")
