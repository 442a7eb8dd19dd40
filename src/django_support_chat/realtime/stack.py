"""The middleware every chat socket goes through, built from Channels' own pieces.

``ChatMiddlewareStack(app)`` is the ``Origin`` check outside and session authentication
inside: ``OriginCheck(SessionAuth(app))``. ``django_support_chat.routing`` wraps each of
the chat's consumers in it, so the chat's routes are protected however a host mounts them,
and the host's own sockets are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)

Scope = dict[str, Any]

logger = logging.getLogger("django_support_chat.realtime")


class _LoggedOriginValidator(OriginValidator):
    """Channels' check, plus one ``ws.refused reason=origin`` line per refusal (the
    browser only sees a bare 403; the operator should see why)."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        valid: bool = super().valid_origin(parsed_origin)
        if not valid:
            origin = parsed_origin.geturl()[:200] if parsed_origin is not None else None
            logger.warning(
                "ws.refused reason=origin origin=%s",
                origin,
                extra={"event": "ws.refused", "reason": "origin", "origin": origin},
            )
        return valid


class OriginCheck:
    """Channels' ``AllowedHostsOriginValidator``, built for each connection so that it
    reads ``ALLOWED_HOSTS`` (and ``DEBUG``) when the socket opens, not when ``asgi.py`` was
    imported. A handshake whose ``Origin`` names no allowed host, or that sends no
    ``Origin``, is refused (HTTP 403) before the session is read or the consumer runs."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        allowed = AllowedHostsOriginValidator(self.inner).allowed_origins  # Channels' hosts
        return await _LoggedOriginValidator(self.inner, allowed)(scope, receive, send)


class SessionAuth:
    """Channels' ``AuthMiddlewareStack`` (cookies, session, ``scope["user"]``).

    Skipped when middleware further out already put a signed-in user in ``scope["user"]``
    (a host that still wraps the chat's routes in ``AuthMiddlewareStack``): the session is
    read once, not twice. An anonymous user from further out (say, the host's own token
    middleware, for a browser that sent none) does not hide the session cookie: the
    session is read then."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stack = AuthMiddlewareStack(inner)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if _signed_in(scope.get("user")):
            return await self.inner(scope, receive, send)
        # AuthMiddleware keeps a "user" it finds in the scope: drop it so the session decides.
        scope = {key: value for key, value in scope.items() if key != "user"}
        return await self.stack(scope, receive, send)


def _signed_in(user: Any) -> bool:
    try:
        return bool(user is not None and user.is_authenticated)
    except ValueError:  # Channels' UserLazyObject, not resolved yet
        return False


def ChatMiddlewareStack(inner: Any) -> OriginCheck:  # named like AuthMiddlewareStack
    """Origin check outside, session authentication inside, ``inner`` innermost."""
    return OriginCheck(SessionAuth(inner))


#: Refuses the handshake (the server answers HTTP 403): no consumer, no traceback.
reject = WebsocketDenier.as_asgi()
