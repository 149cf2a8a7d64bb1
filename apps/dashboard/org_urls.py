"""Routes of the organization pages: the current organization (the switcher's choice), its
members and invitations, roles, teams, audit log and webhooks, and a new organization."""

from django.urls import path

from . import audit, orgs, webhooks

urlpatterns = [
    path("orgs/switch", orgs.org_switch, name="org-switch"),
    path("orgs/new", orgs.org_create, name="org-create"),
    path("org/", orgs.org_page, name="org"),
    path("org/rename", orgs.org_rename, name="org-rename"),
    path("org/branding", orgs.org_branding, name="org-branding"),
    path("org/leave", orgs.org_leave, name="org-leave"),
    path("org/members/add", orgs.member_add, name="org-member-add"),
    path("org/members/<int:member_id>/role", orgs.member_role, name="org-member-role"),
    path("org/members/<int:member_id>/remove", orgs.member_remove, name="org-member-remove"),
    path("org/roles/", orgs.roles_page, name="org-roles"),
    path("org/roles/new", orgs.role_create, name="org-role-create"),
    path("org/roles/<str:name>/edit", orgs.role_edit, name="org-role-edit"),
    path("org/roles/<str:name>/delete", orgs.role_delete, name="org-role-delete"),
    path("org/teams/", orgs.teams_page, name="org-teams"),
    path("org/teams/new", orgs.team_create, name="org-team-create"),
    path("org/teams/<str:name>/edit", orgs.team_edit, name="org-team-edit"),
    path("org/teams/<str:name>/delete", orgs.team_delete, name="org-team-delete"),
    path("org/teams/<str:name>/members/add", orgs.team_member_add, name="org-team-member-add"),
    path("org/teams/<str:name>/members/remove", orgs.team_member_remove, name="org-team-member-remove"),
    path("org/invitations/new", orgs.invitation_create, name="org-invitation-create"),
    path("org/invitations/<str:invitation_id>/resend", orgs.invitation_resend, name="org-invitation-resend"),
    path("org/invitations/<str:invitation_id>/revoke", orgs.invitation_revoke, name="org-invitation-revoke"),
    path("org/audit/", audit.audit_page, name="org-audit"),
    path("org/audit/export", audit.audit_export, name="org-audit-export"),
    path("org/webhooks/", webhooks.webhooks_page, name="org-webhooks"),
    path("org/webhooks/new", webhooks.webhook_create, name="org-webhook-create"),
    path("org/webhooks/<str:webhook_id>/", webhooks.webhook_page, name="org-webhook"),
    path("org/webhooks/<str:webhook_id>/edit", webhooks.webhook_edit, name="org-webhook-edit"),
    path("org/webhooks/<str:webhook_id>/active", webhooks.webhook_active, name="org-webhook-active"),
    path("org/webhooks/<str:webhook_id>/rotate", webhooks.webhook_rotate, name="org-webhook-rotate"),
    path("org/webhooks/<str:webhook_id>/test", webhooks.webhook_test, name="org-webhook-test"),
    path("org/webhooks/<str:webhook_id>/delete", webhooks.webhook_delete, name="org-webhook-delete"),
    path(
        "org/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>",
        webhooks.delivery_page,
        name="org-webhook-delivery",
    ),
    path(
        "org/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/redeliver",
        webhooks.delivery_redeliver,
        name="org-webhook-redeliver",
    ),
]
