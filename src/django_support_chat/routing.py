"""WebSocket routes for the host's ASGI router: ``URLRouter(websocket_urlpatterns)``.

Wrap them in ``AllowedHostsOriginValidator(AuthMiddlewareStack(...))`` (docs/installation.md).
"""

from __future__ import annotations

from django.urls import path

from .realtime import consumers

websocket_urlpatterns = [
    path("ws/chat/user/<int:conversation_id>/", consumers.CustomerConsumer.as_asgi()),
    path("ws/chat/admin/", consumers.StaffLobbyConsumer.as_asgi()),
    path("ws/chat/admin/<int:conversation_id>/", consumers.StaffConversationConsumer.as_asgi()),
]
