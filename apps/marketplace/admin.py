from django import forms
from django.contrib import admin

from apps.audit.admin import AuditedAdmin
from apps.orgs.labels import check_labels
from vibebox import exceptions as errors

from .models import Review, Submission, Template, TemplateVersion


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = "__all__"  # noqa: DJ007 (the admin's form of every field, as before)

    def clean_node_labels(self):
        # Checked as template.yaml's are: a malformed value would fail every create from it.
        try:
            return check_labels(self.cleaned_data.get("node_labels") or {}, field="node_labels")
        except errors.ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Template)
class TemplateAdmin(AuditedAdmin):
    form = TemplateForm
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
