from django import forms
from django.contrib import admin

from apps.audit.admin import AuditedAdmin
from vibebox import exceptions as errors

from .labels import check_labels
from .models import Invitation, Membership, Organization, Role, Team
from .network import validate_network


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = "__all__"  # noqa: DJ007 (the admin's form of every field, as before)
        help_texts = {
            "egress_network": 'Default egress policy of new sandboxes, e.g. {"internet": false, "allow": '
            '["api.github.com", "*.npmjs.org", "140.82.112.0/20"]}; only the keys given apply (a template\'s '
            "and the create's win). Empty: the platform's (internet on).",
            "node_labels": 'Node labels the engine of each new sandbox must have, e.g. {"dedicated": "acme"} '
            "(docs/nodes.md, Placement); merged with a create's and its template's. Empty: none.",
        }

    def clean_node_labels(self):
        try:
            return check_labels(self.cleaned_data.get("node_labels") or {}, field="node_labels")
        except errors.ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_egress_network(self):
        value = self.cleaned_data.get("egress_network")
        if value in (None, {}):
            return None
        try:
            return validate_network(value, field="egress_network", partial=True)
        except errors.ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    form = OrganizationForm
    list_display = ["slug", "name", "personal_for", "created_at"]
    search_fields = ["slug", "name"]
    raw_id_fields = ["personal_for"]
    inlines = [MembershipInline]


@admin.register(Role)
class RoleAdmin(AuditedAdmin):
    list_display = ["name", "org", "created_at"]
    search_fields = ["name", "org__slug"]


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    list_display = ["name", "org", "role", "custom_role"]
    search_fields = ["name", "org__slug"]
    filter_horizontal = ["members"]


@admin.register(Invitation)
class InvitationAdmin(AuditedAdmin):
    """To look at, and to revoke (delete); invitations are sent through the API, which emails them."""

    list_display = ["email", "org", "role", "custom_role", "invited_by", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["accepted_at", "revoked_at"]
    search_fields = ["email", "org__slug"]
    readonly_fields = [field.name for field in Invitation._meta.fields]

    def has_add_permission(self, request):
        return False
