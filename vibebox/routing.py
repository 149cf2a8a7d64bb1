"""WebSocket routes, joined from each app."""

from apps.agents.routing import websocket_urlpatterns as claude_routes
from apps.sandboxes.consumers.terminal import websocket_urlpatterns as terminal_routes
from apps.sandboxes.routing import websocket_urlpatterns as sandbox_routes

websocket_urlpatterns = [*sandbox_routes, *terminal_routes, *claude_routes]
