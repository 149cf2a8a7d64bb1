from django.urls import path

from . import run_views, views

prefix = "sandboxes/<str:sandbox_id>/claude/"

urlpatterns = [
    path(prefix + "enable", views.EnableView.as_view()),
    path(prefix + "status", views.StatusView.as_view()),
    path(prefix + "ask", views.AskView.as_view()),
    path(prefix + "asks", views.AskListView.as_view()),
    path(prefix + "asks/<str:ask_id>", views.AskDetailView.as_view()),
    path(prefix + "asks/<str:ask_id>/cancel", views.AskCancelView.as_view()),
    path(prefix + "sessions", views.SessionListView.as_view()),
    path(prefix + "sessions/<str:session_id>", views.SessionDetailView.as_view()),
    path(prefix + "changes", views.ChangesView.as_view()),
    path(prefix + "approve", views.ApproveView.as_view()),
    path(prefix + "reject", views.RejectView.as_view()),
    # orchestration records (vibebox_sdk.agent)
    path("agent-runs", run_views.AgentRunListView.as_view()),
    path("agent-runs/<str:run_id>", run_views.AgentRunDetailView.as_view()),
    path("agent-runs/<str:run_id>/tasks", run_views.AgentTaskListView.as_view()),
    path("agent-runs/<str:run_id>/tasks/<str:task_id>", run_views.AgentTaskDetailView.as_view()),
]
