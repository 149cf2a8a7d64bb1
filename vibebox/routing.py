"""WebSocket routes, joined from each app."""

from apps.agents.routing import websocket_urlpatterns as claude_routes
from apps.sandboxes.consumers.terminal import websocket_urlpatterns as terminal_routes
from apps.sandboxes.routing import websocket_urlpatterns as sandbox_routes
from vibebox.metrics import label_routes

# Each labelled with its pattern for the WebSocket metrics (vibebox/metrics.py).
websocket_urlpatterns = label_routes([*sandbox_routes, *terminal_routes, *claude_routes])
