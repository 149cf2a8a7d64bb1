from django.urls import path

from . import views

urlpatterns = [
    path("templates", views.TemplateListView.as_view(), name="templates"),
    path("templates/<str:name>", views.TemplateDetailView.as_view(), name="template-detail"),
    path("marketplace/submissions", views.SubmissionListView.as_view(), name="marketplace-submissions"),
    path(
        "marketplace/submissions/<str:submission_id>",
        views.SubmissionDetailView.as_view(),
        name="marketplace-submission-detail",
    ),
    path(
        "marketplace/submissions/<str:submission_id>/review",
        views.SubmissionReviewView.as_view(),
        name="marketplace-submission-review",
    ),
    path(
        "marketplace/submissions/<str:submission_id>/cancel",
        views.SubmissionCancelView.as_view(),
        name="marketplace-submission-cancel",
    ),
    path("marketplace/templates", views.CatalogueListView.as_view(), name="marketplace-templates"),
    path("marketplace/templates/<str:name>", views.CatalogueDetailView.as_view(), name="marketplace-template"),
    path("marketplace/templates/<str:name>/reviews", views.ReviewListView.as_view(), name="marketplace-reviews"),
    path(
        "marketplace/templates/<str:name>/versions/<str:version>/yank",
        views.VersionYankView.as_view(),
        name="marketplace-version-yank",
    ),
    path("marketplace/templates/<str:name>/deprecate", views.DeprecateView.as_view(), name="marketplace-deprecate"),
    path("marketplace/templates/<str:name>/feature", views.FeatureView.as_view(), name="marketplace-feature"),
]
