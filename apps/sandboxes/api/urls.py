from django.urls import path

from apps.sandboxes import services

from . import views

urlpatterns = [
    path("sandboxes", views.SandboxListView.as_view(), name="sandboxes"),
    path("sandboxes/<str:sandbox_id>", views.SandboxDetailView.as_view(), name="sandbox-detail"),
    path("sandboxes/<str:sandbox_id>/start", views.action_view(services.sandbox_start, "start")),
    path("sandboxes/<str:sandbox_id>/stop", views.action_view(services.sandbox_stop, "stop")),
    path("sandboxes/<str:sandbox_id>/restart", views.action_view(services.sandbox_restart, "restart")),
]
