from django.urls import path

from . import views

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
]
