"""The middleware every chat socket goes through, built from Channels' own pieces.

``ChatMiddlewareStack(app)`` is Channels' ``AllowedHostsOriginValidator`` outside and its
``AuthMiddlewareStack`` (cookies, session, ``scope["user"]``) inside, run as one step:
``django_support_chat.routing`` wraps each of the chat's consumers in it, so the chat's
routes are protected however a host mounts them, and the host's own sockets are left
alone.

One step, not five nested middlewares: each nested ASGI middleware keeps its own copy of
the scope and its coroutine frame alive for as long as the socket is open, about 5 KB
per idle socket. Here the checks run in helpers that return (``origin_allowed``,
``authenticate_scope``), the socket gets one copy of the scope, and
``routing.websocket_application()`` calls the same helpers with the copy it makes
anyway for the route (docs/operations.md, "Memory per socket").
"""

from __future__ import annotations

import contextlib
import logging
from importlib import import_module
from typing import Any
from urllib.parse import urlparse

from channels.auth import UserLazyObject, get_user
from channels.security.websocket import (
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)
from django.conf import settings
from django.http import parse_cookie
from django.utils.functional import LazyObject

Scope = dict[str, Any]

logger = logging.getLogger("django_support_chat.realtime")

#: Refuses the handshake (the server answers HTTP 403): no consumer, no traceback.
reject = WebsocketDenier.as_asgi()


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


def origin_allowed(scope: Scope) -> bool:
    """Channels' ``AllowedHostsOriginValidator`` verdict on this handshake's ``Origin``,
    with ``ALLOWED_HOSTS`` (and ``DEBUG``) read now, not when ``asgi.py`` was imported. A
    handshake whose ``Origin`` names no allowed host, or that sends none, is refused."""
    parsed_origin = None
    for name, value in scope.get("headers", []):  # as OriginValidator.__call__ reads it
        if name == b"origin":
            with contextlib.suppress(UnicodeDecodeError):
                parsed_origin = urlparse(value.decode("latin1"))
    allowed = AllowedHostsOriginValidator(None).allowed_origins  # Channels' hosts
    return _LoggedOriginValidator(None, allowed).valid_origin(parsed_origin)


async def authenticate_scope(scope: Scope) -> None:
    """What Channels' ``AuthMiddlewareStack`` adds, written into ``scope`` (a copy the
    caller owns): ``cookies``, ``session`` and ``user``.

    Skipped when middleware further out already put a signed-in user in ``scope["user"]``
    (a host that still wraps the chat's routes in ``AuthMiddlewareStack``): the session is
    read once, not twice. An anonymous user from further out (say, the host's own token
    middleware, for a browser that sent none) does not hide the session cookie: the
    session is read then."""
    if _signed_in(scope.get("user")):
        return
    scope.pop("user", None)  # AuthMiddleware keeps a "user" it finds: the session decides
    if "cookies" not in scope:  # CookieMiddleware
        cookies: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        scope["cookies"] = cookies
    if "session" not in scope:  # SessionMiddleware (a socket never saves its session)
        session = LazyObject()
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session._wrapped = store(scope["cookies"].get(settings.SESSION_COOKIE_NAME))
        scope["session"] = session
    user = UserLazyObject()  # AuthMiddleware
    user._wrapped = await get_user(scope)
    scope["user"] = user


def _signed_in(user: Any) -> bool:
    try:
        return bool(user is not None and user.is_authenticated)
    except ValueError:  # Channels' UserLazyObject, not resolved yet
        return False


class ChatAuth:
    """The ASGI middleware ``ChatMiddlewareStack`` returns: the ``Origin`` check (HTTP 403
    before the session is read or the consumer runs), then one copy of the scope with the
    session and user in it for ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if not origin_allowed(scope):
            return await reject(scope, receive, send)
        scope = dict(scope)  # the socket's own copy; the consumer trims it after connect
        await authenticate_scope(scope)
        return await self.inner(scope, receive, send)


def ChatMiddlewareStack(inner: Any) -> ChatAuth:  # named like AuthMiddlewareStack
    """Origin check outside, session authentication inside, ``inner`` innermost."""
    return ChatAuth(inner)
