"""The dashboard's pages (docs/dashboard.md). Each module of views owns one area."""

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.sso.forms import LoginForm
from vibebox import login_limits

from . import marketplace_urls, org_urls, page_urls, tab_urls, views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        login_limits.limited(
            auth_views.LoginView.as_view(template_name="dashboard/login.html", authentication_form=LoginForm)
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("sandboxes/", views.sandbox_list, name="sandboxes"),
    path("sandboxes/new", views.sandbox_create, name="sandbox-create"),
    path("sandboxes/bulk", views.sandbox_bulk, name="sandbox-bulk"),
    path("sandboxes/<str:sandbox_id>/", views.sandbox_detail, name="sandbox"),
    path("sandboxes/<str:sandbox_id>/metrics", views.sandbox_metrics, name="sandbox-metrics"),
    path("sandboxes/<str:sandbox_id>/extend", views.sandbox_extend, name="sandbox-extend"),
    path("sandboxes/<str:sandbox_id>/actions/<str:action>", views.sandbox_action, name="sandbox-action"),
    path("sandboxes/<str:sandbox_id>/grants/new", views.sandbox_share, name="sandbox-share"),
    path("sandboxes/<str:sandbox_id>/grants/<str:grant_id>/access", views.sandbox_grant_access, name="grant-access"),
    path("sandboxes/<str:sandbox_id>/grants/<str:grant_id>/revoke", views.sandbox_grant_revoke, name="grant-revoke"),
]
urlpatterns += tab_urls.urlpatterns + page_urls.urlpatterns + org_urls.urlpatterns + marketplace_urls.urlpatterns
