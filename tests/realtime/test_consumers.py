"""Consumers through the full ASGI stack, on the in-memory layer and on Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from django_support_chat import tokens
from django_support_chat.models import Conversation, Message
from django_support_chat.realtime import consumers

from .conftest import make_user, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        bob = make_user("bob")
        staff = make_user("staff", is_staff=True)
        staff2 = make_user("staff2", is_staff=True)
        conversation = Conversation.objects.create(customer=alice)
        other = Conversation.objects.create(customer=bob)
        return {
            "alice": alice,
            "bob": bob,
            "staff": staff,
            "staff2": staff2,
            "conv": conversation,
            "other": other,
        }

    return await db(create)()


async def connect(sockets: list, path: str, user: Any, **kwargs: Any):
    connected, code, socket = await open_socket(path, user, **kwargs)
    assert connected, f"{path} refused with {code}"
    sockets.append(socket)
    await socket.expect("hello")
    return socket


# -- authentication and authorization ---------------------------------------------------


async def test_refusals_use_documented_close_codes(people, sockets):
    conv, other = people["conv"], people["other"]
    cases = [
        (f"/ws/chat/user/{conv.pk}/", None, consumers.CLOSE_UNAUTHENTICATED),
        ("/ws/chat/admin/", None, consumers.CLOSE_UNAUTHENTICATED),
        (f"/ws/chat/user/{other.pk}/", people["alice"], consumers.CLOSE_NOT_FOUND),
        ("/ws/chat/user/999999/", people["alice"], consumers.CLOSE_NOT_FOUND),
        ("/ws/chat/admin/", people["alice"], consumers.CLOSE_FORBIDDEN),
        (f"/ws/chat/admin/{conv.pk}/", people["alice"], consumers.CLOSE_FORBIDDEN),
    ]
    for path, user, expected in cases:
        connected, code, _ = await open_socket(path, user)
        assert (connected, code) == (False, expected), path


async def test_foreign_origin_is_refused_before_the_consumer(people):
    connected, _code, _ = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", people["alice"], origin=b"https://evil.example"
    )
    assert connected is False


async def test_refused_socket_joins_no_group(people, sockets):
    """Bob, refused on Alice's conversation, must not receive her messages."""
    connected, _, bob_socket = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", people["bob"]
    )
    assert not connected
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    await alice.send("message:send", {"text": "private", "client_id": str(uuid.uuid4())})
    await alice.expect("message:sent")
    assert await bob_socket.nothing(0.3)


async def test_short_lived_token_authenticates_without_cookie(people, sockets, chat_settings):
    token = await db(tokens.make_token)(people["alice"])
    connected, code, socket = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", None, query=f"token={token}"
    )
    assert connected, code
    sockets.append(socket)
    hello = await socket.expect("hello")
    assert hello["data"]["user_id"] == people["alice"].pk

    connected, code, _ = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", None, query="token=forged"
    )
    assert (connected, code) == (False, consumers.CLOSE_UNAUTHENTICATED)

    chat_settings(WS_TOKEN_MAX_AGE=1)
    await asyncio.sleep(2.1)
    connected, code, _ = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", None, query=f"token={token}"
    )
    assert (connected, code) == (False, consumers.CLOSE_UNAUTHENTICATED)


async def test_token_endpoint_needs_authentication(people):
    def fetch() -> tuple[int, int, Any]:
        anonymous = Client().post("/api/chat/ws-token").status_code
        client = Client()
        client.force_login(people["alice"])
        response = client.post("/api/chat/ws-token")
        return anonymous, response.status_code, response.json()

    anonymous, status, body = await db(fetch)()
    assert anonymous in (401, 403)
    assert status == 200 and body["expires_in"] == 60
    user, _ = await db(tokens.read_token)(body["token"])
    assert user.pk == people["alice"].pk


async def test_logout_closes_the_users_sockets(people, sockets):
    from django.conf import settings
    from example.asgi import application

    from .conftest import Socket

    def login() -> Client:
        client = Client()
        client.force_login(people["alice"])
        return client

    client = await db(login)()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(
        application,
        f"/ws/chat/user/{people['conv'].pk}/",
        headers=[
            (b"origin", b"http://localhost"),
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    socket = Socket(communicator)
    await socket.expect("hello")
    await db(client.post)("/logout/")
    output = await communicator.receive_output(timeout=3)
    while output["type"] != "websocket.close":
        output = await communicator.receive_output(timeout=3)
    assert output["code"] == consumers.CLOSE_LOGGED_OUT


# -- messages, validation, idempotency ----------------------------------------------------


async def test_send_is_stored_answered_and_broadcast(people, sockets):
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])

    client_id = str(uuid.uuid4())
    await alice.send("message:send", {"text": "Hello <b>there</b>", "client_id": client_id}, ref=7)
    sent = await alice.expect("message:sent")
    assert sent["ref"] == 7 and sent["data"]["created"] is True
    message = sent["data"]["message"]
    assert message["text"] == "Hello <b>there</b>"
    assert "<b>" not in message["html"]

    live = await staff.expect("message:new")
    assert live["data"]["message"]["id"] == message["id"]
    lobby_new = await lobby.expect("message:new")
    assert lobby_new["data"]["message"]["id"] == message["id"]
    # The counters ride on message:new: no separate unread:update for a send.
    assert lobby_new["data"]["unread_staff_count"] == 1
    assert lobby_new["data"]["unread_user_count"] == 0

    # Staff reply reaches the customer live.
    await staff.send("message:send", {"text": "Hi Alice", "client_id": str(uuid.uuid4())})
    await staff.expect("message:sent")
    reply = await alice.expect(
        "message:new", where=lambda f: f["data"]["message"]["sender_side"] == "staff"
    )
    assert reply["data"]["message"]["text"] == "Hi Alice"

    # A resend with the same client_id returns the stored message and stores nothing.
    await alice.send("message:send", {"text": "Hello <b>there</b>", "client_id": client_id})
    again = await alice.expect("message:sent")
    assert again["data"]["created"] is False and again["data"]["message"]["id"] == message["id"]
    assert await db(Message.objects.filter(conversation=conv).count)() == 2


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '["a list"]',
        '{"data": {}}',
        '{"type": "nope"}',
        f'{{"type": "message:send", "data": {{"text": "   ", "client_id": "{uuid.uuid4()}"}}}}',
        f'{{"type": "message:send", "data": {{"text": 42, "client_id": "{uuid.uuid4()}"}}}}',
        '{"type": "message:send", "data": {"text": "hi", "client_id": "not-a-uuid"}}',
        f'{{"type": "message:send", "data": {{"text": "a\\u0000b", "client_id": "{uuid.uuid4()}"}}}}',
        '{"type": "message:send", "data": "text"}',
        '{"type": "message:read", "data": {"up_to_id": -1}}',
    ],
)
async def test_bad_frames_get_an_error_and_store_nothing(people, sockets, frame):
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    await alice.comm.send_to(text_data=frame)
    error = await alice.expect("error")
    assert error["data"]["code"] and error["data"]["message"]
    assert await db(Message.objects.count)() == 0
    await alice.send("heartbeat")  # still connected
    await alice.expect("heartbeat")


async def test_oversized_frame_is_refused(people, sockets):
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    text = "x" * 40000
    await alice.send("message:send", {"text": text, "client_id": str(uuid.uuid4())})
    error = await alice.expect("error")
    assert error["data"]["code"] == "frame_too_large"
    assert await db(Message.objects.count)() == 0


async def test_over_long_text_is_a_field_error(people, sockets, chat_settings):
    chat_settings(MAX_MESSAGE_LENGTH=10)
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    await alice.send("message:send", {"text": "x" * 11, "client_id": str(uuid.uuid4())}, ref="r1")
    error = await alice.expect("error")
    assert error["ref"] == "r1" and "text" in error["data"]["fields"]
    assert await db(Message.objects.count)() == 0


async def test_flooding_closes_the_socket(people, sockets, chat_settings):
    chat_settings(WS_FLOOD_LIMIT=5)
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    for _ in range(6):
        await alice.send("heartbeat")
    while True:
        output = await alice.comm.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == consumers.CLOSE_FLOODING


async def test_sends_share_the_rest_throttle(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_send": "2/minute"})
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    for _ in range(2):
        await alice.send("message:send", {"text": "hi", "client_id": str(uuid.uuid4())})
        await alice.expect("message:sent")
    await alice.send("message:send", {"text": "hi", "client_id": str(uuid.uuid4())})
    error = await alice.expect("error")
    assert error["data"]["code"] == "throttled" and error["data"]["retry_after"] > 0
    assert await db(Message.objects.count)() == 2


# -- catch-up, receipts, unread ---------------------------------------------------------


async def test_sync_returns_everything_after_an_id(people, sockets, chat_settings):
    from django_support_chat import services

    chat_settings(HISTORY_PAGE_SIZE=3)
    conv, alice_user = people["conv"], people["alice"]

    def send_five() -> list[int]:
        return [
            services.send_message(conv, alice_user, f"m{i}", uuid.uuid4())[0].pk for i in range(5)
        ]

    ids = await db(send_five)()
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", alice_user)
    await alice.send("sync", {"after_id": ids[0]})
    page = await alice.expect("sync")
    assert [m["id"] for m in page["data"]["messages"]] == ids[1:4]
    assert page["data"]["has_more"] is True
    await alice.send("sync", {"after_id": ids[3]})
    page = await alice.expect("sync")
    assert [m["id"] for m in page["data"]["messages"]] == ids[4:]
    assert page["data"]["has_more"] is False


async def test_delivered_and_read_receipts_are_live(people, sockets):
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    await alice.send("message:send", {"text": "hi", "client_id": str(uuid.uuid4())})
    message_id = (await alice.expect("message:sent"))["data"]["message"]["id"]
    await staff.expect("message:new")

    await staff.send("message:delivered", {"up_to_id": message_id})
    delivered = await alice.expect("message:delivered")
    assert delivered["data"] == {
        "conversation_id": conv.pk,
        "side": "staff",
        "up_to_id": message_id,
    }

    await staff.send("message:read", {})
    read = await alice.expect("message:read")
    assert read["data"]["side"] == "staff" and read["data"]["up_to_id"] == message_id
    unread = await lobby.expect("unread:update")
    while unread["data"]["unread_staff_count"] != 0:
        unread = await lobby.expect("unread:update")
    refreshed = await db(Conversation.objects.get)(pk=conv.pk)
    assert refreshed.unread_staff_count == 0 and refreshed.staff_read_id == message_id
    message = await db(Message.objects.get)(pk=message_id)
    assert message.status_for_recipient(refreshed) == "read"


# -- typing -------------------------------------------------------------------------------


async def test_typing_is_relayed_not_echoed_and_stops_by_itself(people, sockets, chat_settings):
    chat_settings(TYPING_TIMEOUT=1)
    conv = people["conv"]
    staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    await alice.send("typing:start")
    start = await staff.expect("typing:start")
    assert start["data"]["user_id"] == people["alice"].pk and start["data"]["side"] == "user"
    stop = await staff.expect("typing:stop", timeout=3)
    assert stop["data"]["user_id"] == people["alice"].pk
    frames = []
    while not await alice.comm.receive_nothing(0.2):
        frames.append(await alice.receive())
    assert not [f for f in frames if f["type"].startswith("typing")], frames


async def test_typing_relay_is_rate_limited(people, sockets, chat_settings):
    chat_settings(TYPING_RATE=1, TYPING_TIMEOUT=5)
    conv = people["conv"]
    staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    for _ in range(10):
        await alice.send("typing:start")
    # A message after the burst marks its end: frames reach staff in the order alice sent
    # them, so whatever the burst relayed arrives before the message.
    await alice.send("message:send", {"text": "done typing", "client_id": str(uuid.uuid4())})
    relayed = []
    while (frame := await staff.receive())["type"] != "message:new":
        relayed.append(frame["type"])
    assert relayed.count("typing:start") == 1, relayed


# -- presence -------------------------------------------------------------------------------


async def test_presence_counts_connections(people, sockets):
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    tab1 = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    online = await lobby.expect("presence:update")
    assert online["data"]["user_id"] == people["alice"].pk and online["data"]["online"] is True
    tab2 = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    await tab1.close()  # returns once tab1's consumer has finished disconnecting
    sockets.remove(tab1)
    # A message from the second tab, sent after that, reaches the lobby after anything the
    # disconnect published: no offline update may come before it.
    await tab2.send("message:send", {"text": "still here", "client_id": str(uuid.uuid4())})
    before = []
    while (frame := await lobby.receive())["type"] != "message:new":
        before.append(frame)
    assert not [f for f in before if f["type"] == "presence:update"], "offline too early"
    await tab2.close()
    sockets.remove(tab2)
    offline = await lobby.expect("presence:update")
    assert offline["data"]["online"] is False


async def test_customer_sees_whether_support_is_online(people, sockets):
    conv = people["conv"]
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    update = await alice.expect("presence:update")
    assert update["data"]["support_online"] is True
    await lobby.close()
    sockets.remove(lobby)
    update = await alice.expect("presence:update")
    assert update["data"]["support_online"] is False

    later = await connect(sockets, "/ws/chat/admin/", people["staff2"])
    _connected, _, fresh = await open_socket(f"/ws/chat/user/{conv.pk}/", people["alice"])
    sockets.append(fresh)
    hello = await fresh.expect("hello")
    assert hello["data"]["presence"]["support_online"] is True
    assert later


async def test_silent_client_is_dropped_and_shown_offline(people, sockets, chat_settings):
    """No heartbeat for two intervals: the server closes the socket and reports offline."""
    chat_settings(HEARTBEAT_INTERVAL=1, PRESENCE_TTL=2)
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    await lobby.expect("presence:update")
    for _ in range(4):  # keep the lobby alive, let Alice's socket go silent
        await asyncio.sleep(0.7)
        await lobby.send("heartbeat")
    offline = await lobby.expect("presence:update", timeout=2)
    assert offline["data"] == {"user_id": people["alice"].pk, "online": False, "side": "user"}
    output = await alice.comm.receive_output(timeout=1)
    while output["type"] != "websocket.close":
        output = await alice.comm.receive_output(timeout=1)
    assert output["code"] == consumers.CLOSE_HEARTBEAT_TIMEOUT


async def test_heartbeating_sockets_stay_online_past_the_presence_ttl(
    people, sockets, chat_settings
):
    """Entries are renewed in bulk by the worker's watchdog, not per heartbeat frame: a
    socket that keeps talking is still online after several PRESENCE_TTLs."""
    from django_support_chat.presence import get_presence_store

    chat_settings(HEARTBEAT_INTERVAL=1, PRESENCE_TTL=2)
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    await lobby.expect("presence:update")  # Alice came online
    for _ in range(10):  # 5 s: two and a half TTLs
        await asyncio.sleep(0.5)
        await lobby.send("heartbeat")
        await alice.send("heartbeat")
    store = get_presence_store()
    assert await store.online([people["alice"].pk, people["staff"].pk]) == {
        people["alice"].pk,
        people["staff"].pk,
    }
    assert await store.staff_online()
    frames = []
    while not await lobby.nothing(0.2):
        frames.append(await lobby.receive())
    offline = [f for f in frames if f["type"] == "presence:update" and not f["data"]["online"]]
    assert offline == []


async def test_counterparts_on_a_dead_worker_come_and_go_with_their_presence_entry(
    people, sockets, chat_settings
):
    """A peer whose worker died never broadcasts: the watchdog's re-check (one batched
    question per consumer class) shows it online while its entry lives, offline once the
    entry expires."""
    from django_support_chat.presence import get_presence_store

    chat_settings(HEARTBEAT_INTERVAL=1, PRESENCE_TTL=2)
    conv = people["conv"]
    staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    other_staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff2"])
    bob = await connect(sockets, f"/ws/chat/user/{people['other'].pk}/", people["bob"])
    # Entries left by a worker that died: no presence:update was ever sent for them.
    store = get_presence_store()
    await store.connect(people["alice"].pk, "dead-worker.alice", False)

    async def heartbeats(seconds: float) -> None:
        for _ in range(int(seconds / 0.5)):
            await asyncio.sleep(0.5)
            for socket in (staff, other_staff, bob):
                await socket.send("heartbeat")

    beating = asyncio.ensure_future(heartbeats(6))
    try:
        for socket in (staff, other_staff):
            online = await socket.expect(
                "presence:update", where=lambda f: f["data"].get("user_id") == people["alice"].pk
            )
            assert online["data"]["online"] is True
            offline = await socket.expect(
                "presence:update",
                where=lambda f: f["data"].get("user_id") == people["alice"].pk,
                timeout=5,
            )
            assert offline["data"] == {
                "user_id": people["alice"].pk,
                "online": False,
                "side": "user",
            }
    finally:
        beating.cancel()


async def test_customer_socket_gets_each_event_once(people, sockets):
    from django_support_chat import services

    conv = people["conv"]
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])

    def reply() -> None:
        conversation = Conversation.objects.get(pk=conv.pk)
        services.send_message(conversation, people["staff"], "one reply", uuid.uuid4())

    await db(reply)()
    frames = [await alice.expect("message:new")]
    while not await alice.nothing(0.5):
        frames.append(await alice.receive())
    kinds = [f["type"] for f in frames]
    assert kinds.count("message:new") == 1, kinds
    # The badge count rides on message:new; no unread:update follows a send.
    assert kinds.count("unread:update") == 0, kinds
    assert frames[0]["data"]["unread_user_count"] == 1


async def test_token_carries_no_session_key():
    from django.core import signing

    class User:
        pk = 5

    token = tokens.make_token(User(), "the-real-session-key")
    payload = signing.loads(token, salt=tokens.SALT)
    assert "the-real-session-key" not in str(payload)
    assert payload["s"] == tokens.session_fingerprint("the-real-session-key")


async def test_a_deeply_nested_frame_is_invalid_json_and_the_socket_lives(people, sockets):
    """Nesting under the size limit used to raise RecursionError out of the consumer."""
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    await alice.comm.send_to(text_data="[" * 16000 + "]" * 16000)
    error = await alice.expect("error")
    assert error["data"]["code"] == "invalid_json"
    await alice.send("heartbeat")  # still connected
    await alice.expect("heartbeat")
