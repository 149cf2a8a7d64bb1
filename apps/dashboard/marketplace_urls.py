"""Routes of the template marketplace's pages (views in marketplace.py). The fixed paths come
before `<name>/`: a template cannot be named submit, submissions or review there."""

from django.urls import path

from . import marketplace as m

M = "marketplace/"

urlpatterns = [
    path(M, m.catalogue_page, name="marketplace"),
    path(M + "submit/", m.submit_page, name="marketplace-submit"),
    path(M + "submissions/", m.submissions_page, name="marketplace-submissions"),
    path(M + "submissions/<str:submission_id>/", m.submission_page, name="marketplace-submission"),
    path(M + "submissions/<str:submission_id>/cancel", m.submission_cancel, name="marketplace-submission-cancel"),
    path(M + "review/", m.review_queue, name="marketplace-review"),
    path(M + "review/<str:submission_id>", m.review_decide, name="marketplace-review-decide"),
    path(M + "<str:name>/", m.template_page, name="marketplace-template"),
    path(M + "<str:name>/rate", m.template_rate, name="marketplace-rate"),
    path(M + "<str:name>/feature", m.template_feature, name="marketplace-feature"),
    path(M + "<str:name>/deprecate", m.template_deprecate, name="marketplace-deprecate"),
    path(M + "<str:name>/versions/<str:version>/yank", m.version_yank, name="marketplace-yank"),
]
