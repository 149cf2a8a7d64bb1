from django.urls import path

from . import audit, views

urlpatterns = [
    path("orgs", views.OrgListView.as_view(), name="orgs"),
    path("orgs/<str:slug>", views.OrgDetailView.as_view(), name="org-detail"),
    path("orgs/<str:slug>/export", views.OrgExportView.as_view(), name="org-export"),
    path("orgs/<str:slug>/erase", views.OrgEraseView.as_view(), name="org-erase"),
    path("orgs/<str:slug>/members", views.MemberListView.as_view(), name="org-members"),
    path("orgs/<str:slug>/members/<str:member_id>", views.MemberDetailView.as_view(), name="org-member-detail"),
    path("orgs/<str:slug>/audit-log", audit.AuditLogView.as_view(), name="org-audit-log"),
    path("orgs/<str:slug>/audit-log/export", audit.AuditExportView.as_view(), name="org-audit-log-export"),
    path("orgs/<str:slug>/invitations", views.InvitationListView.as_view(), name="org-invitations"),
    path(
        "orgs/<str:slug>/invitations/<str:invitation_id>",
        views.InvitationDetailView.as_view(),
        name="org-invitation-detail",
    ),
    path(
        "orgs/<str:slug>/invitations/<str:invitation_id>/resend",
        views.InvitationResendView.as_view(),
        name="org-invitation-resend",
    ),
    path("invitations/accept", views.InvitationAcceptView.as_view(), name="invitations-accept"),
    path("orgs/<str:slug>/roles", views.RoleListView.as_view(), name="org-roles"),
    path("orgs/<str:slug>/roles/<str:name>", views.RoleDetailView.as_view(), name="org-role-detail"),
    path("orgs/<str:slug>/teams", views.TeamListView.as_view(), name="org-teams"),
    path("orgs/<str:slug>/teams/<str:name>", views.TeamDetailView.as_view(), name="org-team-detail"),
    path("orgs/<str:slug>/teams/<str:name>/members", views.TeamMemberListView.as_view(), name="org-team-members"),
    path(
        "orgs/<str:slug>/teams/<str:name>/members/<str:username>",
        views.TeamMemberDetailView.as_view(),
        name="org-team-member-detail",
    ),
]
