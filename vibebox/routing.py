"""WebSocket routes, one list per app, joined here (streams arrive with the streams issue)."""

websocket_urlpatterns: list = []
