"""WebSocket routes for the host's ASGI router: ``URLRouter(websocket_urlpatterns)``."""

from __future__ import annotations

websocket_urlpatterns: list = []
