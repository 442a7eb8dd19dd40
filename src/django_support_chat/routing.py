"""The chat's WebSocket routes, for the host's ``asgi.py`` (docs/installation.md, step 4).

- ``websocket_application(fallback=None)``: the ``"websocket"`` application of the host's
  ``ProtocolTypeRouter``. Paths under ``WEBSOCKET_PATH_PREFIX`` (``/ws/chat/``) are the
  chat's; every other path goes to ``fallback``, the host's own WebSocket handling, as it
  is (no origin check, no authentication added), or is refused when there is none.
- ``websocket_urlpatterns``: the chat's routes under ``ws/chat/``, for a host's own
  ``URLRouter``.

Every chat route carries its own ``Origin`` check and session authentication
(``realtime.stack.ChatMiddlewareStack``), so no host has to remember them. A path under
the prefix that names no chat route is refused at the handshake (HTTP 403), not answered
with a server error.
"""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import path, re_path

from .conf import chat_settings
from .realtime import consumers
from .realtime.stack import ChatMiddlewareStack, reject

__all__ = ["websocket_application", "websocket_urlpatterns"]

# Relative to the prefix; each consumer wrapped in the chat's middleware.
_ROUTES = [
    ("user/<int:conversation_id>/", ChatMiddlewareStack(consumers.CustomerConsumer.as_asgi())),
    ("admin/", ChatMiddlewareStack(consumers.StaffLobbyConsumer.as_asgi())),
    (
        "admin/<int:conversation_id>/",
        ChatMiddlewareStack(consumers.StaffConversationConsumer.as_asgi()),
    ),
]

websocket_urlpatterns = [path("ws/chat/" + route, app) for route, app in _ROUTES]

# Under the prefix: the routes, then a refusal for any other path (instead of URLRouter's
# "No route found" exception, which the server turns into a 500 and a traceback).
_chat_router = URLRouter([*(path(route, app) for route, app in _ROUTES), re_path(r"", reject)])


def _prefix() -> str:
    prefix = chat_settings.WEBSOCKET_PATH_PREFIX.strip("/")
    return f"/{prefix}/" if prefix else "/"


class ChatWebsocketApplication:
    """What ``websocket_application()`` returns; see the module docstring."""

    def __init__(self, fallback: Any = None) -> None:
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(f"websocket_application() got a {scope['type']!r} connection")
        path_ = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and path_.startswith(root_path):
            path_ = path_[len(root_path) :]
        prefix = _prefix()  # read per socket: follows the setting (and override_settings)
        if path_.startswith(prefix):
            remaining = path_[len(prefix) :]
            return await _chat_router(dict(scope, path_remaining=remaining), receive, send)
        if self.fallback is None:
            return await reject(scope, receive, send)
        return await self.fallback(scope, receive, send)


def websocket_application(fallback: Any = None) -> ChatWebsocketApplication:
    """The ASGI application for ``ProtocolTypeRouter({"websocket": ...})``.

    ``fallback`` is the ASGI application that serves every WebSocket path outside the
    chat's prefix: the host's own ``URLRouter`` (in whatever middleware the host already
    uses) or a plain ASGI function. It gets the scope untouched. Without it, those paths
    are refused at the handshake.
    """
    return ChatWebsocketApplication(fallback)
