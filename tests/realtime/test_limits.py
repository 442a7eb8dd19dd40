"""Per-frame rate limits for every frame type that costs a query, and the per-user
socket cap (docs/protocol.md#limits), on the in-memory layer and on Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from django_support_chat import services
from django_support_chat.models import Conversation
from django_support_chat.realtime import consumers

from .conftest import make_user, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        staff = make_user("staff", is_staff=True)
        conversation = Conversation.objects.create(customer=alice)
        services.send_message(conversation, alice, "hello", uuid.uuid4())
        return {"alice": alice, "staff": staff, "conv": conversation, "bob": make_user("bob")}

    return await db(create)()


async def connect(sockets: list, path: str, user: Any):
    connected, code, socket = await open_socket(path, user)
    assert connected, f"{path} refused with {code}"
    sockets.append(socket)
    await socket.expect("hello")
    return socket


async def expect_throttled(socket, ref):
    error = await socket.expect("error")
    assert error["ref"] == ref
    assert error["data"]["code"] == "throttled"
    assert error["data"]["retry_after"] > 0
    return error


async def test_every_scope_has_a_default():
    from django_support_chat import ratelimits
    from django_support_chat.conf import DEFAULTS

    for scope in (ratelimits.SYNC_SCOPE, ratelimits.READ_SCOPE, ratelimits.PRESENCE_SCOPE):
        assert DEFAULTS["THROTTLE_RATES"][scope].endswith("/minute")
    assert DEFAULTS["WS_MAX_SOCKETS_PER_USER"] == 20


async def test_sync_is_rate_limited(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_sync": "2/minute"})
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    for n in range(2):
        await alice.send("sync", {"after_id": 0}, ref=f"s{n}")
        page = await alice.expect("sync")
        assert page["ref"] == f"s{n}"
    await alice.send("sync", {"after_id": 0}, ref="s2")
    await expect_throttled(alice, "s2")
    # Still open, and other frames still answered.
    await alice.send("heartbeat", ref="hb")
    assert (await alice.expect("heartbeat"))["ref"] == "hb"


async def test_read_and_delivered_share_one_budget(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_read": "2/minute"})
    conv = people["conv"]
    staff = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    newest = conv.last_message_id
    await staff.send("message:delivered", {"up_to_id": newest}, ref="d")
    await staff.send("message:delivered", {"up_to_id": newest}, ref="d2")
    await staff.send("message:read", {}, ref="r")
    await expect_throttled(staff, "r")
    fresh = await db(Conversation.objects.get)(pk=conv.pk)
    assert fresh.staff_delivered_id == newest
    assert fresh.staff_read_id == 0  # the throttled read changed nothing
    assert fresh.unread_staff_count == 1


async def test_budgets_are_per_user_across_sockets(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_sync": "1/minute"})
    path = f"/ws/chat/user/{people['conv'].pk}/"
    tab1 = await connect(sockets, path, people["alice"])
    tab2 = await connect(sockets, path, people["alice"])
    await tab1.send("sync", {"after_id": 0}, ref="a")
    await tab1.expect("sync")
    await tab2.send("sync", {"after_id": 0}, ref="b")
    await expect_throttled(tab2, "b")


async def test_presence_query_is_rate_limited(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_presence": "1/minute"})
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    await lobby.send("presence:query", {"user_ids": [people["alice"].pk]}, ref="p1")
    assert (await lobby.expect("presence:state"))["ref"] == "p1"
    await lobby.send("presence:query", {"user_ids": [people["alice"].pk]}, ref="p2")
    await expect_throttled(lobby, "p2")


async def test_presence_query_without_the_store_says_when_to_ask_again(
    people, sockets, chat_settings
):
    """The presence store's own Redis refuses connections (nothing listens on its port):
    the socket still opens, and the question gets ``unavailable`` with ``retry_after``,
    like a send without a database."""
    import socket as sockets_module

    with sockets_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chat_settings(PRESENCE_REDIS_URL=f"redis://127.0.0.1:{port}/0", SEND_RETRY_AFTER=2.5)
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    await lobby.send("presence:query", {"user_ids": [people["alice"].pk]}, ref="p1")
    error = await lobby.expect("error")
    assert error["ref"] == "p1"
    assert error["data"]["code"] == "unavailable"
    assert error["data"]["retry_after"] == 2.5
    # The socket opened without presence and still works.
    await lobby.send("heartbeat", ref="h1")
    assert (await lobby.expect("heartbeat"))["ref"] == "h1"


async def test_a_scope_set_to_none_is_unlimited(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_sync": None})
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    for n in range(5):
        await alice.send("sync", {"after_id": 0}, ref=n)
        assert (await alice.expect("sync"))["ref"] == n


async def test_sockets_per_user_are_capped(people, sockets, chat_settings):
    chat_settings(WS_MAX_SOCKETS_PER_USER=2)
    conv = people["conv"]
    first = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    await connect(sockets, "/ws/chat/admin/", people["staff"])  # another user: own count
    await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    connected, code, _ = await open_socket(f"/ws/chat/user/{conv.pk}/", people["alice"])
    assert (connected, code) == (False, consumers.CLOSE_TOO_MANY_SOCKETS)
    # Every route counts, and the refused socket joined nothing and counts for nothing.
    await connect(sockets, "/ws/chat/admin/", people["staff"])
    connected, code, _ = await open_socket("/ws/chat/admin/", people["staff"])
    assert (connected, code) == (False, consumers.CLOSE_TOO_MANY_SOCKETS)
    # Closing one frees a place.
    await first.close()
    sockets.remove(first)
    await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
