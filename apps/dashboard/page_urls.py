"""Routes of the other pages: git and Claude tabs, agent activity, templates, API keys, usage."""

from django.urls import path

from . import account, activity

urlpatterns = [
    path("activity/", activity.activity_page, name="activity"),
    path("activity/runs/<str:run_id>", activity.activity_run, name="activity-run"),
    path("templates/", account.templates_page, name="templates"),
    path("keys/", account.keys_page, name="keys"),
    path("keys/new", account.key_create, name="key-create"),
    path("keys/<str:key_id>/rotate", account.key_rotate, name="key-rotate"),
    path("keys/<str:key_id>/revoke", account.key_revoke, name="key-revoke"),
    path("keys/<str:key_id>/usage", account.key_usage, name="key-usage"),
    path("usage/", account.usage_page, name="usage"),
]
