"""Routes of the other pages: git and Claude tabs, agent activity, templates, API keys, usage, billing."""

from django.urls import path

from . import account, activity, billing, claude, sandbox_dev

urlpatterns = [
    path("sandboxes/<str:sandbox_id>/git", sandbox_dev.sandbox_git, name="sandbox-git"),
    path("sandboxes/<str:sandbox_id>/git/commit", sandbox_dev.sandbox_git_commit, name="sandbox-git-commit"),
    path("sandboxes/<str:sandbox_id>/git/push", sandbox_dev.sandbox_git_push, name="sandbox-git-push"),
    path("sandboxes/<str:sandbox_id>/claude", sandbox_dev.sandbox_claude, name="sandbox-claude"),
    path("sandboxes/<str:sandbox_id>/claude/enable", sandbox_dev.sandbox_claude_enable, name="sandbox-claude-enable"),
    path("sandboxes/<str:sandbox_id>/claude/ask", sandbox_dev.sandbox_claude_ask, name="sandbox-claude-ask"),
    path(
        "sandboxes/<str:sandbox_id>/claude/approve", sandbox_dev.sandbox_claude_approve, name="sandbox-claude-approve"
    ),
    path("sandboxes/<str:sandbox_id>/claude/reject", sandbox_dev.sandbox_claude_reject, name="sandbox-claude-reject"),
    path("sandboxes/<str:sandbox_id>/claude/setup", claude.sandbox_claude_setup, name="sandbox-claude-setup"),
    path("claude/", claude.claude_page, name="claude"),
    path("activity/", activity.activity_page, name="activity"),
    path("activity/runs/<str:run_id>", activity.activity_run, name="activity-run"),
    path("templates/", account.templates_page, name="templates"),
    path("keys/", account.keys_page, name="keys"),
    path("keys/new", account.key_create, name="key-create"),
    path("keys/<str:key_id>/rotate", account.key_rotate, name="key-rotate"),
    path("keys/<str:key_id>/revoke", account.key_revoke, name="key-revoke"),
    path("keys/<str:key_id>/usage", account.key_usage, name="key-usage"),
    path("usage/", account.usage_page, name="usage"),
    path("billing/", billing.billing_page, name="billing"),
]
