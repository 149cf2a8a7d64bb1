from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from apps.graphql_api.view import GraphQLView
from apps.monitoring import exporter as metrics_exporter
from apps.orgs import web as orgs_web
from apps.sso import forms as sso_forms

from . import login_limits, views

# The admin's sign-in form counts failures and locks out like the dashboard's (login_limits), and
# refuses passwords of members whose organization requires single sign-on (apps/sso/forms.py).
admin.site.login_form = sso_forms.AdminLoginForm

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_exporter.metrics_view, name="metrics"),  # Prometheus (docs/monitoring.md)
    path("api/v1/", include("vibebox.api.urls")),
    path("graphql", GraphQLView.as_view(), name="graphql"),  # the GraphQL API (docs/graphql.md)
    path(
        "api/docs",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="api-docs",
    ),
    path("admin/login/", login_limits.limited(admin.site.login)),  # before the admin's own route: 429s
    path("admin/", admin.site.urls),
    path("invitations/<str:token>", orgs_web.invitation_page, name="invitation"),  # an invitation email's link
    path("", include("apps.monitoring.status_urls")),  # the public /status page
    path("", include("apps.sso.urls")),
    path("", include("apps.dashboard.urls")),
]

handler400 = "vibebox.api.errors.handler400"
handler404 = "vibebox.api.errors.handler404"
handler500 = "vibebox.api.errors.handler500"
