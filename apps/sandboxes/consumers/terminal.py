"""Interactive terminals (in progress)."""

websocket_urlpatterns: list = []
