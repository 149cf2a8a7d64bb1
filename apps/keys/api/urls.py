from django.urls import path

from . import views

urlpatterns = [
    path("keys", views.KeyListView.as_view(), name="keys"),
    path("keys/<str:key_id>", views.KeyDetailView.as_view(), name="key-detail"),
    path("keys/<str:key_id>/rotate", views.KeyRotateView.as_view(), name="key-rotate"),
    path("keys/<str:key_id>/usage", views.KeyUsageView.as_view(), name="key-usage"),
]
