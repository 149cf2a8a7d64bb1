from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("", include("apps.sandboxes.api.urls")),
    path("", include("apps.keys.api.urls")),
    path("", include("apps.marketplace.api.urls")),
    path("", include("apps.agents.api.urls")),
    path("schema", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
]
