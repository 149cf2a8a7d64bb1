from django.urls import path

from .consumers.exec import ExecConsumer
from .consumers.logs import ActivityConsumer, LogsConsumer
from .consumers.process import ProcessConsumer
from .consumers.submissions import SubmissionLogConsumer
from .consumers.watch import WatchConsumer

websocket_urlpatterns = [
    path("ws/activity", ActivityConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/logs", LogsConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/exec", ExecConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/processes/<str:process_id>", ProcessConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/files/watch", WatchConsumer.as_asgi()),
    path("ws/v1/marketplace/submissions/<str:submission_id>/log", SubmissionLogConsumer.as_asgi()),
]
