from django.urls import path

from . import quota_views, views

urlpatterns = [
    path("billing/usage", views.UsageView.as_view(), name="billing-usage"),
    path("billing/usage/export", views.UsageExportView.as_view(), name="billing-usage-export"),
    path("billing/costs", views.CostsView.as_view(), name="billing-costs"),
    path("billing/plans", views.PlanListView.as_view(), name="billing-plans"),
    path("billing/plan", views.OrgPlanView.as_view(), name="billing-plan"),
    path("billing/quotas", quota_views.QuotasView.as_view(), name="billing-quotas"),
    # Under the sandboxes' path, answered here (billing sits above sandboxes).
    path("sandboxes/<str:sandbox_id>/cost", views.SandboxCostView.as_view(), name="sandbox-cost"),
]
