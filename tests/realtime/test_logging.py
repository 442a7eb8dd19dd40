"""The operator's log lines (docs/operations.md, "Logging and errors"): real sockets through
the example project's ASGI stack, real REST requests, a channel layer whose Redis is
stopped. Each line carries its values in ``extra`` and in the message; none carries
message text."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from rest_framework.test import APIClient

from django_support_chat import presence
from django_support_chat.models import Conversation, Message
from django_support_chat.realtime import consumers

from .conftest import make_user, open_socket
from .test_limits import connect
from .test_redis_outage import RedisServer

pytestmark = [pytest.mark.django_db(transaction=True)]

db = database_sync_to_async
NAMESPACE = "django_support_chat"


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        staff = make_user("staff", is_staff=True)
        return {"alice": alice, "staff": staff, "conv": Conversation.objects.create(customer=alice)}

    return await db(create)()


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's message, extra values and formatted traceback, as one string."""
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter())
    parts = []
    for record in caplog.records:
        parts.append(handler.format(record))
        parts.extend(repr(value) for value in vars(record).values())
    return "\n".join(parts)


@pytest.mark.asyncio
async def test_connect_and_close_are_logged_with_code_and_user_never_text(people, sockets, caplog):
    secret = f"secret-text-{uuid.uuid4().hex}"
    alice, conv = people["alice"], people["conv"]
    with caplog.at_level(logging.DEBUG, logger=NAMESPACE):
        socket = await connect(sockets, f"/ws/chat/user/{conv.pk}/", alice)
        await socket.send("message:send", {"text": secret, "client_id": str(uuid.uuid4())})
        await socket.expect("message:sent")
        await socket.close()
        sockets.remove(socket)

    [opened] = events(caplog, "ws.connect")
    assert opened.levelno == logging.INFO and opened.name == "django_support_chat.realtime"
    assert (opened.route, opened.user_id, opened.conversation_id) == ("customer", alice.pk, conv.pk)
    assert (
        opened.getMessage() == f"ws.connect route=customer user={alice.pk} conversation={conv.pk}"
    )
    [closed] = events(caplog, "ws.close")
    assert closed.levelno == logging.INFO
    assert (closed.code, closed.user_id, closed.route) == (1000, alice.pk, "customer")
    assert closed.frames_in == 1  # message:send
    assert closed.frames_out >= 2  # hello, message:sent (and the events it caused)
    assert closed.duration >= 0
    assert f"ws.close code=1000 user={alice.pk} " in closed.getMessage()
    assert await db(Message.objects.filter(text=secret).exists)()
    assert secret not in everything_logged(caplog)


@pytest.mark.asyncio
async def test_a_server_close_logs_its_own_code_once(people, sockets, caplog, chat_settings):
    """The lobby (no conversation): closed by the server for flooding. One ``ws.flood``
    however many frames follow, one ``ws.close`` with 4429, not the client's code."""
    chat_settings(WS_FLOOD_LIMIT=5)
    staff = people["staff"]
    with caplog.at_level(logging.INFO, logger=NAMESPACE):
        socket = await connect(sockets, "/ws/chat/admin/", staff)
        for _ in range(20):
            await socket.send("heartbeat")
        while (await socket.comm.receive_output(timeout=3))["type"] != "websocket.close":
            pass
        await socket.close()
        sockets.remove(socket)

    [flood] = events(caplog, "ws.flood")
    assert flood.levelno == logging.WARNING
    assert (flood.user_id, flood.route, flood.limit) == (staff.pk, "staff_lobby", 5)
    assert f"ws.flood user={staff.pk} route=staff_lobby" in flood.getMessage()
    [opened] = events(caplog, "ws.connect")
    assert opened.conversation_id is None
    [closed] = events(caplog, "ws.close")
    assert (closed.code, closed.user_id) == (consumers.CLOSE_FLOODING, staff.pk)
    assert closed.getMessage().startswith(f"ws.close code=4429 user={staff.pk} ")


@pytest.mark.asyncio
async def test_throttled_frames_log_once_per_socket_per_window(
    people, sockets, caplog, chat_settings
):
    chat_settings(THROTTLE_RATES={"support_chat_sync": "1/minute"})
    alice, conv = people["alice"], people["conv"]
    with caplog.at_level(logging.INFO, logger=NAMESPACE):
        socket = await connect(sockets, f"/ws/chat/user/{conv.pk}/", alice)
        await socket.send("sync", {"after_seq": 0}, ref=0)
        await socket.expect("sync")
        for n in range(1, 6):
            await socket.send("sync", {"after_seq": 0}, ref=n)
            error = await socket.expect("error")
            assert (error["ref"], error["data"]["code"]) == (n, "throttled")

    [throttled] = events(caplog, "ws.throttled")
    assert throttled.levelno == logging.WARNING
    assert (throttled.scope, throttled.user_id, throttled.frames) == (
        "support_chat_sync",
        alice.pk,
        1,
    )
    assert f"ws.throttled scope=support_chat_sync user={alice.pk} " in throttled.getMessage()


@pytest.mark.asyncio
async def test_refusals_are_warnings(people, caplog):
    conv = people["conv"]
    with caplog.at_level(logging.INFO, logger=NAMESPACE):
        connected, _, _ = await open_socket(
            f"/ws/chat/user/{conv.pk}/", people["alice"], origin=b"https://evil.example"
        )
        assert connected is False
        connected, code, _ = await open_socket("/ws/chat/admin/", people["alice"])
        assert (connected, code) == (False, consumers.CLOSE_FORBIDDEN)
        connected, code, _ = await open_socket(f"/ws/chat/user/{conv.pk}/", None)
        assert (connected, code) == (False, consumers.CLOSE_UNAUTHENTICATED)

    origin, forbidden, anonymous = events(caplog, "ws.refused")
    assert all(r.levelno == logging.WARNING for r in (origin, forbidden, anonymous))
    assert (origin.reason, origin.origin) == ("origin", "https://evil.example")
    assert origin.getMessage() == "ws.refused reason=origin origin=https://evil.example"
    assert (forbidden.reason, forbidden.code, forbidden.route, forbidden.user_id) == (
        "forbidden",
        4403,
        "staff_lobby",
        people["alice"].pk,
    )
    assert forbidden.getMessage() == (
        f"ws.refused reason=forbidden code=4403 route=staff_lobby user={people['alice'].pk}"
    )
    assert (anonymous.reason, anonymous.code, anonymous.user_id) == ("unauthenticated", 4401, None)
    # A refused socket was never connected: no connect or close line.
    assert not events(caplog, "ws.connect") and not events(caplog, "ws.close")


@pytest.mark.asyncio
async def test_the_socket_cap_refusal_is_logged(people, sockets, caplog, chat_settings):
    chat_settings(WS_MAX_SOCKETS_PER_USER=1)
    await connect(sockets, "/ws/chat/admin/", people["staff"])
    with caplog.at_level(logging.INFO, logger=NAMESPACE):
        connected, code, _ = await open_socket("/ws/chat/admin/", people["staff"])
    assert (connected, code) == (False, consumers.CLOSE_TOO_MANY_SOCKETS)
    [refused] = events(caplog, "ws.refused")
    assert (refused.reason, refused.code, refused.user_id) == (
        "too_many_sockets",
        4430,
        people["staff"].pk,
    )


def api_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def post_message(client: APIClient, conversation: Conversation, text: str) -> Any:
    return client.post(
        f"/api/chat/conversations/{conversation.pk}/messages/",
        {"text": text, "client_id": str(uuid.uuid4())},
        format="json",
    )


def test_a_throttled_rest_send_is_a_warning(settings, caplog):
    settings.SUPPORT_CHAT = {"THROTTLE_RATES": {"support_chat_send": "1/minute"}}
    alice = make_user("alice")
    conversation = Conversation.objects.create(customer=alice)
    client = api_client(alice)
    with caplog.at_level(logging.INFO, logger=NAMESPACE):
        assert post_message(client, conversation, "first").status_code == 201
        assert not events(caplog, "http.throttled")
        assert post_message(client, conversation, "second").status_code == 429
    [throttled] = events(caplog, "http.throttled")
    assert throttled.levelno == logging.WARNING
    assert throttled.name == "django_support_chat.ratelimits"
    assert (throttled.scope, throttled.user_id) == ("support_chat_send", alice.pk)
    assert throttled.getMessage() == f"http.throttled scope=support_chat_send user={alice.pk}"


@pytest.fixture
def stopped_redis_layer(settings: Any):
    """The channel layer points at a redis-server that was started, then killed."""
    server = RedisServer()
    server.start()
    server.kill()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [server.url], "prefix": f"test{os.getpid()}"},
        }
    }
    channel_layers.backends.clear()
    presence._store = None
    yield server
    channel_layers.backends.clear()
    server.stop()


def test_a_failed_publish_logs_the_event_type_never_the_text(stopped_redis_layer, caplog):
    secret = f"secret-text-{uuid.uuid4().hex}"
    alice = make_user("alice")
    conversation = Conversation.objects.create(customer=alice)
    with caplog.at_level(logging.INFO, logger=NAMESPACE):
        response = post_message(api_client(alice), conversation, secret)
    assert response.status_code == 201  # stored; clients re-sync from the database
    assert Message.objects.filter(text=secret).exists()
    failures = events(caplog, "events.publish_failed")
    assert failures, [r.getMessage() for r in caplog.records]
    assert {r.levelno for r in failures} == {logging.ERROR}
    assert "message:new" in {r.event_type for r in failures}
    [new] = [r for r in failures if r.event_type == "message:new"]
    assert f"support_chat.conversation.{conversation.pk}" in new.groups
    assert new.getMessage().startswith("events.publish_failed type=message:new: ")
    assert new.exc_info is not None  # the layer's error, for the operator
    assert secret not in everything_logged(caplog)


@pytest.mark.asyncio
async def test_the_chat_under_sentrys_asgi_middleware_still_serves_sockets(people, caplog):
    """docs/operations.md: ``SentryAsgiMiddleware(websocket_application())`` in asgi.py."""
    sentry_sdk = pytest.importorskip("sentry_sdk")
    from channels.routing import ProtocolTypeRouter
    from channels.testing import WebsocketCommunicator
    from django.conf import settings as django_settings
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
    from sentry_sdk.transport import Transport

    from django_support_chat.routing import websocket_application

    from .conftest import session_cookie

    class Kept(Transport):
        """Keeps what would go to Sentry (an error in the chat would land here)."""

        def __init__(self) -> None:
            super().__init__()
            self.envelopes: list[Any] = []

        def capture_envelope(self, envelope: Any) -> None:
            self.envelopes.append(envelope)

    transport = Kept()
    # Without a DSN the SDK stays inactive: a made-up one and a transport that keeps what
    # would be sent make it run for real. No default or auto-enabled integrations:
    # nothing is patched for the rest of the test run.
    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1",
        transport=transport,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    try:
        application = ProtocolTypeRouter(
            {"websocket": SentryAsgiMiddleware(websocket_application())}
        )
        cookie = await db(session_cookie)(people["alice"])
        communicator = WebsocketCommunicator(
            application,
            f"/ws/chat/user/{people['conv'].pk}/",
            headers=[
                (b"origin", b"http://localhost"),
                (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
            ],
        )
        with caplog.at_level(logging.INFO, logger=NAMESPACE):
            connected, _ = await communicator.connect(timeout=5)
            assert connected
            hello = await communicator.receive_json_from(timeout=5)
            assert hello["type"] == "hello" and hello["data"]["user_id"] == people["alice"].pk
            await communicator.send_json_to({"type": "heartbeat", "data": {}, "ref": 1})
            assert (await communicator.receive_json_from(timeout=5))["ref"] == 1
            await communicator.disconnect()
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
    assert [r.code for r in events(caplog, "ws.close")] == [1000]
    items = [item for envelope in transport.envelopes for item in envelope.items]
    assert not [item for item in items if item.type == "event"]  # no error on the way
