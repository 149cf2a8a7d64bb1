from django.urls import path

from . import views

urlpatterns = [
    path("orgs", views.OrgListView.as_view(), name="orgs"),
    path("orgs/<str:slug>", views.OrgDetailView.as_view(), name="org-detail"),
    path("orgs/<str:slug>/members", views.MemberListView.as_view(), name="org-members"),
    path("orgs/<str:slug>/members/<str:member_id>", views.MemberDetailView.as_view(), name="org-member-detail"),
]
