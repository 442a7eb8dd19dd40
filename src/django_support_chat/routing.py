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

from django.urls import URLPattern, path

from .conf import chat_settings
from .realtime import consumers
from .realtime.stack import ChatMiddlewareStack, authenticate_scope, origin_allowed, reject

__all__ = ["websocket_application", "websocket_urlpatterns"]

# Relative to the prefix.
_ROUTES = [
    ("user/<int:conversation_id>/", consumers.CustomerConsumer.as_asgi()),
    ("admin/", consumers.StaffLobbyConsumer.as_asgi()),
    ("admin/<int:conversation_id>/", consumers.StaffConversationConsumer.as_asgi()),
]

# For a host's own URLRouter: each consumer wrapped in the chat's middleware.
websocket_urlpatterns = [
    path("ws/chat/" + route, ChatMiddlewareStack(app)) for route, app in _ROUTES
]

# Under the prefix, matched as URLRouter matches them; any other path is refused (instead
# of URLRouter's "No route found" exception, which the server turns into a 500 and a
# traceback).
_chat_patterns: list[URLPattern] = [path(route, app) for route, app in _ROUTES]


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
        if not path_.startswith(prefix):
            if self.fallback is None:
                return await reject(scope, receive, send)
            return await self.fallback(scope, receive, send)
        # The chat's: Channels' URLRouter and ChatMiddlewareStack in this one frame, so the
        # socket keeps one copy of the scope, not one per nested middleware, for as long as
        # it is open (docs/operations.md, "Memory per socket").
        routed = _route(scope, path_[len(prefix) :])
        if routed is None or not origin_allowed(scope):
            return await reject(scope, receive, send)
        app, scope = routed
        await authenticate_scope(scope)
        return await app(scope, receive, send)


def _route(scope: dict[str, Any], remaining: str) -> tuple[Any, dict[str, Any]] | None:
    """The consumer of the chat route ``remaining`` names and its scope (a copy, with
    ``path_remaining`` and ``url_route``), as ``URLRouter`` resolves it; or None."""
    for route in _chat_patterns:
        match = route.pattern.match(remaining.lstrip("/"))
        if match:
            new_path, args, kwargs = match
            outer = scope.get("url_route", {})
            url_route = {
                "args": outer.get("args", ()) + tuple(args),
                "kwargs": {**outer.get("kwargs", {}), **kwargs, **route.default_args},
            }
            return route.callback, dict(scope, path_remaining=new_path, url_route=url_route)
    return None


def websocket_application(fallback: Any = None) -> ChatWebsocketApplication:
    """The ASGI application for ``ProtocolTypeRouter({"websocket": ...})``.

    ``fallback`` is the ASGI application that serves every WebSocket path outside the
    chat's prefix: the host's own ``URLRouter`` (in whatever middleware the host already
    uses) or a plain ASGI function. It gets the scope untouched. Without it, those paths
    are refused at the handshake.
    """
    return ChatWebsocketApplication(fallback)
