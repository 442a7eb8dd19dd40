"""``django_support_chat.routing``: the chat's sockets carry their own Origin check and
session auth however a host mounts them, the host's own sockets are left alone, and paths
that match no route are refused at the handshake instead of raising.

Real consumers, a real channel layer (in-memory and Redis) and real sessions; the host's
socket is a plain ASGI echo function."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack, UserLazyObject
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.urls import path

from django_support_chat import tokens
from django_support_chat.models import Conversation
from django_support_chat.realtime import consumers
from django_support_chat.routing import websocket_application, websocket_urlpatterns

from .conftest import make_user, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async
GOOD_ORIGIN = b"http://localhost"
FOREIGN_ORIGIN = b"https://evil.example"


class Echo:
    """The host's own WebSocket handling: a plain ASGI function that accepts anyone and
    echoes text frames. Keeps the scopes it was called with."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": "echo: " + message["text"]})
            elif message["type"] == "websocket.disconnect":
                return


@pytest.fixture
async def alice(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        user = make_user("alice")
        conversation = Conversation.objects.create(customer=user)
        return {"user": user, "conv": conversation, "cookie": session_cookie(user)}

    return await db(create)()


def headers(origin: bytes | None = GOOD_ORIGIN, cookie: str | None = None) -> list:
    result = [(b"origin", origin)] if origin else []
    if cookie:
        result.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return result


async def refused_at_handshake(communicator: WebsocketCommunicator) -> bool:
    """True when the handshake is refused (close before accept, the server's HTTP 403)
    and the application then ends cleanly: ``wait()`` re-raises anything it raised."""
    connected, _code = await communicator.connect(timeout=5)
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(timeout=5)
    return connected is False


async def hello(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """Connect to a chat consumer; its first frame (``hello``, or a 44xx close)."""
    connected, code = await communicator.connect(timeout=5)
    assert connected, f"refused at the handshake ({code})"
    return await communicator.receive_output(timeout=5)


async def test_host_socket_without_origin_is_served_as_it_is(layer):
    echo = Echo()
    app = websocket_application(fallback=echo)
    communicator = WebsocketCommunicator(app, "/ws/host/feed/?x=1", headers=[])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_from(timeout=5) == "echo: ping"
    await communicator.disconnect()
    # Untouched: no session, no user, no cookies, no url_route added on the way.
    (scope,) = echo.scopes
    assert scope["path"] == "/ws/host/feed/" and scope["query_string"] == b"x=1"
    assert not {"user", "session", "cookies", "url_route", "path_remaining"} & scope.keys()


async def test_host_socket_with_foreign_origin_is_the_hosts_business(layer):
    echo = Echo()
    app = websocket_application(fallback=echo)
    communicator = WebsocketCommunicator(app, "/socket", headers=headers(FOREIGN_ORIGIN))
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.disconnect()


async def test_chat_route_without_origin_or_with_a_foreign_one_is_refused(alice):
    app = websocket_application(fallback=Echo())
    route = f"/ws/chat/user/{alice['conv'].pk}/"
    token = await db(tokens.make_token)(alice["user"])
    cases = [
        (route, headers(None, alice["cookie"])),
        (route, headers(FOREIGN_ORIGIN, alice["cookie"])),
        (f"{route}?token={token}", headers(None)),  # token clients send an Origin too
        ("/ws/chat/admin/", headers(None)),
    ]
    for url, sent in cases:
        assert await refused_at_handshake(WebsocketCommunicator(app, url, headers=sent)), url


async def test_chat_route_with_good_origin_and_session_connects_as_that_user(alice):
    app = websocket_application(fallback=Echo())
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    first = await hello(communicator)
    frame = json.loads(first["text"])
    assert frame["type"] == "hello" and frame["data"]["user_id"] == alice["user"].pk
    await communicator.disconnect()

    # The same socket without the cookie passes the Origin check and meets the consumer.
    anonymous = WebsocketCommunicator(app, url, headers=headers())
    first = await hello(anonymous)
    assert first == {"type": "websocket.close", "code": consumers.CLOSE_UNAUTHENTICATED}
    await anonymous.disconnect()


async def test_bare_urlpatterns_still_check_origin_and_read_the_session(alice):
    """A host that puts the patterns in its own router, without any middleware."""
    app = URLRouter([path("ws/host/", Echo()), *websocket_urlpatterns])
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    foreign = WebsocketCommunicator(app, url, headers=headers(FOREIGN_ORIGIN, alice["cookie"]))
    assert await refused_at_handshake(foreign)
    missing = WebsocketCommunicator(app, url, headers=headers(None, alice["cookie"]))
    assert await refused_at_handshake(missing)

    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    frame = json.loads((await hello(communicator))["text"])
    assert frame["data"]["user_id"] == alice["user"].pk
    await communicator.disconnect()


async def test_an_open_socket_keeps_only_what_it_reads(alice):
    """Memory per idle socket (docs/operations.md, "Memory per socket"): once connected,
    the socket's scope no longer holds the session, cookies and user the middleware put
    there for authentication, and its own state is in slots, not in its ``__dict__``.
    The socket still knows its user and route and answers frames."""
    app = websocket_application()
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    assert json.loads((await hello(communicator))["text"])["type"] == "hello"
    (socket,) = [
        s for s in consumers.Watchdog.for_running_loop().sockets if s.user.pk == alice["user"].pk
    ]
    assert not {"session", "cookies", "user"} & socket.scope.keys()
    assert socket.scope["url_route"] == {
        "args": (),
        "kwargs": {"conversation_id": alice["conv"].pk},
    }
    assert socket.frame_times == ()  # no list until the first frame
    # No conversation instance once hello is sent: its id and customer (ints) only.
    assert socket.conversation is None
    assert (socket.conversation_id, socket.conversation_customer_id) == (
        alice["conv"].pk,
        alice["user"].pk,
    )
    await communicator.send_to(text_data=json.dumps({"type": "heartbeat", "ref": 1}))
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "heartbeat"
    assert len(socket.frame_times) == 1
    own = set(vars(socket))  # what Channels sets, nothing of the chat's own
    assert own <= {
        "groups",
        "scope",
        "channel_layer",
        "channel_name",
        "channel_receive",
        "base_send",
    }
    assert socket.auth_session_key is not None and socket.session_fingerprint is not None
    await communicator.disconnect()


async def test_old_readme_stack_keeps_working(alice):
    """``AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))``,
    as the README said before."""
    app = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    frame = json.loads((await hello(communicator))["text"])
    assert frame["data"]["user_id"] == alice["user"].pk
    await communicator.disconnect()


async def test_a_user_set_further_out_is_not_looked_up_again(alice):
    """Middleware outside the chat's routes that already set ``scope["user"]`` (as the
    host's own AuthMiddlewareStack does, with the same lazy object) is trusted: the chat
    does not read the session a second time. Here there is no cookie at all, so a second
    lookup would replace the user with nobody (and the consumer would close with 4401)."""

    def outer(inner: Any) -> Any:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
            user = UserLazyObject()
            user._wrapped = alice["user"]
            scope = dict(scope, user=user, session=SessionStore())
            return await inner(scope, receive, send)

        return app

    app = outer(URLRouter(websocket_urlpatterns))
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers())
    frame = json.loads((await hello(communicator))["text"])
    assert frame["data"]["user_id"] == alice["user"].pk
    await communicator.disconnect()


async def test_an_anonymous_user_set_further_out_does_not_hide_the_session(alice):
    """Host middleware that set ``scope["user"]`` to nobody (a token middleware, say, for a
    browser that sent no token): the chat still reads the session cookie."""

    def outer(inner: Any) -> Any:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
            return await inner(dict(scope, user=AnonymousUser()), receive, send)

        return app

    app = outer(URLRouter(websocket_urlpatterns))
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    frame = json.loads((await hello(communicator))["text"])
    assert frame["data"]["user_id"] == alice["user"].pk
    await communicator.disconnect()


@pytest.mark.parametrize(
    "url", ["/ws/chat/user/abc/", "/ws/chat/nope/", "/ws/chat/", "/ws/chat/admin/1/extra/"]
)
async def test_unknown_chat_paths_are_refused_without_an_exception(alice, url, caplog):
    echo = Echo()
    app = websocket_application(fallback=echo)
    with caplog.at_level(logging.DEBUG):
        for sent in (headers(cookie=alice["cookie"]), headers(None)):
            assert await refused_at_handshake(WebsocketCommunicator(app, url, headers=sent))
    assert echo.scopes == []  # the chat's prefix is the chat's: not handed to the host
    assert not [record for record in caplog.records if record.exc_info]


async def test_without_fallback_other_paths_are_refused_cleanly(alice, caplog):
    app = websocket_application()
    with caplog.at_level(logging.DEBUG):
        for url in ("/ws/host/feed/", "/", "/ws/chatter/"):
            for sent in (headers(), headers(None)):
                assert await refused_at_handshake(WebsocketCommunicator(app, url, headers=sent))
    assert not [record for record in caplog.records if record.exc_info]
    # ... while the chat's own routes work as usual.
    url = f"/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    assert json.loads((await hello(communicator))["text"])["type"] == "hello"
    await communicator.disconnect()


async def test_prefix_follows_the_setting(alice, chat_settings):
    chat_settings(WEBSOCKET_PATH_PREFIX="/sockets/support/")
    echo = Echo()
    app = websocket_application(fallback=echo)
    url = f"/sockets/support/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    assert json.loads((await hello(communicator))["text"])["type"] == "hello"
    await communicator.disconnect()
    # /ws/chat/ is no longer the chat's: it is the host's.
    other = WebsocketCommunicator(app, f"/ws/chat/user/{alice['conv'].pk}/", headers=[])
    assert (await other.connect(timeout=5))[0] is True
    await other.disconnect()
    assert [scope["path"] for scope in echo.scopes] == [f"/ws/chat/user/{alice['conv'].pk}/"]


async def test_root_path_is_left_out_of_the_match(alice):
    """Behind a server mounted at a sub-path (ASGI ``root_path``), like URLRouter."""
    app = websocket_application(fallback=Echo())
    url = f"/site/ws/chat/user/{alice['conv'].pk}/"
    communicator = WebsocketCommunicator(app, url, headers=headers(cookie=alice["cookie"]))
    communicator.scope["root_path"] = "/site"  # read when the application starts
    assert json.loads((await hello(communicator))["text"])["type"] == "hello"
    await communicator.disconnect()


async def test_websocket_application_is_for_websockets_only(layer):
    with pytest.raises(ValueError, match="websocket_application"):
        await websocket_application()({"type": "http", "path": "/"}, None, None)
