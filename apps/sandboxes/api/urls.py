from django.urls import path

from apps.sandboxes.services import lifecycle, recovery

from . import (
    context_views,
    env_views,
    exec_views,
    file_views,
    git_hook_views,
    git_views,
    grant_views,
    metrics_views,
    package_views,
    pool_views,
    snapshot_views,
    views,
    watch_views,
)

urlpatterns = [
    path("pools", pool_views.PoolListView.as_view(), name="pools"),
    path("snapshots", snapshot_views.SnapshotListView.as_view()),
    path("snapshots/<str:snapshot_id>", snapshot_views.SnapshotDetailView.as_view()),
    path("sandboxes/<str:sandbox_id>/snapshots", snapshot_views.SandboxSnapshotsView.as_view()),
    path("sandboxes/<str:sandbox_id>/restore", snapshot_views.SandboxRestoreView.as_view()),
    path("sandboxes", views.SandboxListView.as_view(), name="sandboxes"),
    path("sandboxes/<str:sandbox_id>", views.SandboxDetailView.as_view(), name="sandbox-detail"),
    path("sandboxes/<str:sandbox_id>/start", views.action_view(lifecycle.sandbox_start, "start")),
    path("sandboxes/<str:sandbox_id>/stop", views.action_view(lifecycle.sandbox_stop, "stop")),
    path("sandboxes/<str:sandbox_id>/restart", views.action_view(lifecycle.sandbox_restart, "restart")),
    path("sandboxes/<str:sandbox_id>/recover", views.action_view(recovery.sandbox_recover, "recover")),
    path("sandboxes/<str:sandbox_id>/pause", views.action_view(lifecycle.sandbox_pause, "pause")),
    path("sandboxes/<str:sandbox_id>/resume", views.action_view(lifecycle.sandbox_resume, "resume")),
    path("sandboxes/<str:sandbox_id>/exec", exec_views.ExecView.as_view()),
    path("sandboxes/<str:sandbox_id>/execute", exec_views.ExecuteView.as_view()),
    path("sandboxes/<str:sandbox_id>/executions", exec_views.ExecutionListView.as_view()),
    path("sandboxes/<str:sandbox_id>/logs", exec_views.LogsView.as_view()),
    path("sandboxes/<str:sandbox_id>/metrics", metrics_views.SandboxMetricsView.as_view()),
    path("sandboxes/<str:sandbox_id>/processes", exec_views.ProcessListView.as_view()),
    path("sandboxes/<str:sandbox_id>/processes/<str:process_id>/kill", exec_views.ProcessKillView.as_view()),
    path("sandboxes/<str:sandbox_id>/terminals", exec_views.TerminalListView.as_view()),
    path("sandboxes/<str:sandbox_id>/terminals/<str:session_id>", exec_views.TerminalDetailView.as_view()),
    path("sandboxes/<str:sandbox_id>/executions/<str:execution_id>", exec_views.ExecutionDetailView.as_view()),
    path("sandboxes/<str:sandbox_id>/grants", grant_views.GrantListView.as_view()),
    path("sandboxes/<str:sandbox_id>/grants/<str:grant_id>", grant_views.GrantDetailView.as_view()),
    path("sandboxes/<str:sandbox_id>/env", env_views.EnvView.as_view()),
    path("sandboxes/<str:sandbox_id>/packages", package_views.PackagesView.as_view()),
    path("sandboxes/<str:sandbox_id>/env/<str:name>", env_views.EnvVarView.as_view()),
    path("sandboxes/<str:sandbox_id>/files", file_views.FilesView.as_view()),
    path("sandboxes/<str:sandbox_id>/files/mkdir", file_views.FileMkdirView.as_view(), {"path": "mkdir"}),
    path("sandboxes/<str:sandbox_id>/files/move", file_views.FileMoveView.as_view(), {"path": "move"}),
    # File watch (SSE; the WebSocket is /ws/sandboxes/{id}/files/watch): before files/<path>, as mkdir and move.
    path("sandboxes/<str:sandbox_id>/files/watch", watch_views.FileWatchView.as_view()),
    path("sandboxes/<str:sandbox_id>/files/<path:path>", file_views.FileView.as_view()),
    # Auto-pull webhooks (before git/<name>: "hooks" is no git command).
    path("sandboxes/<str:sandbox_id>/git/hooks", git_hook_views.GitHookListView.as_view()),
    path("sandboxes/<str:sandbox_id>/git/hooks/<str:hook_id>", git_hook_views.GitHookDetailView.as_view()),
    path("git-hooks/<str:hook_id>", git_hook_views.GitHookReceiveView.as_view()),
    *[path(f"sandboxes/<str:sandbox_id>/git/{name}", view) for name, view in git_views.views.items()],
    # code contexts (issue 25)
    path("sandboxes/<str:sandbox_id>/contexts", context_views.ContextListView.as_view()),
    path("sandboxes/<str:sandbox_id>/contexts/<str:context_id>", context_views.ContextDetailView.as_view()),
    path("sandboxes/<str:sandbox_id>/contexts/<str:context_id>/execute", context_views.ContextExecuteView.as_view()),
    path(
        "sandboxes/<str:sandbox_id>/contexts/<str:context_id>/interrupt", context_views.ContextInterruptView.as_view()
    ),
    path("sandboxes/<str:sandbox_id>/contexts/<str:context_id>/restart", context_views.ContextRestartView.as_view()),
    # Egress policy (issue 25, egress).
    path("sandboxes/<str:sandbox_id>/network", views.SandboxNetworkView.as_view()),
]

# Preview URLs (apps/sandboxes/preview/, docs/api.md "Preview URLs").
from . import preview_views  # noqa: E402

urlpatterns += [
    path("sandboxes/<str:sandbox_id>/ports", preview_views.PortListView.as_view()),
    path("sandboxes/<str:sandbox_id>/ports/<str:port>", preview_views.PortDetailView.as_view()),
    path("sandboxes/<str:sandbox_id>/ports/<str:port>/url", preview_views.PortUrlView.as_view()),
]
