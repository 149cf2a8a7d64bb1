from django.urls import path

from .consumers import ClaudeConsumer

websocket_urlpatterns = [
    path("ws/sandboxes/<str:sandbox_id>/claude", ClaudeConsumer.as_asgi()),
]
