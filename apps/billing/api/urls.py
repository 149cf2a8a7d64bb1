from django.urls import path

from . import quota_views

urlpatterns = [
    path("billing/quotas", quota_views.QuotasView.as_view(), name="billing-quotas"),
]
