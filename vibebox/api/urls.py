from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from . import schema  # noqa: F401  (registers the OpenAPI extensions of the custom fields)

urlpatterns = [
    path("", include("apps.sandboxes.api.urls")),
    path("", include("apps.orgs.api.urls")),
    path("", include("apps.keys.api.urls")),
    path("", include("apps.sso.api.urls")),
    path("", include("apps.marketplace.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("", include("apps.webhooks.api.urls")),
    path("", include("apps.billing.api.urls")),
    path("", include("apps.billing.api.invoice_urls")),
    path("", include("apps.monitoring.api.urls")),  # status, status/slo (docs/monitoring.md)
    path("schema", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
]
