from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import Invitation, Membership, Organization, Role, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
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
