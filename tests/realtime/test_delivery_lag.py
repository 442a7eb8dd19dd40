"""Pushback on late deliveries (#14; sendqueue.DeliveryLag, SEND_MAX_LAG): when the
events this worker published reach its own sockets late, its sends are refused as
``overloaded`` until the deliveries are on time again; events of other workers (other
clocks) never count, nor do events that waited behind a slow client. On the in-memory layer
and on channels-redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from django_support_chat import events, sendqueue
from django_support_chat.models import Conversation, Message

from ..test_loop_lag import make_demand
from .conftest import connect, make_user, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        return {
            "alice": alice,
            "staff": make_user("staff", is_staff=True),
            "conv": Conversation.objects.create(customer=alice),
        }

    return await db(create)()


def published_ago(seconds: float, worker: str = events.WORKER_ID) -> dict[str, Any]:
    """A layer message as this worker (or another) publishes it, ``seconds`` ago."""
    message = events.group_message(events.envelope(events.RESYNC, {"reason": "test"}))
    message["published"] -= seconds
    message["worker"] = worker
    return message


async def test_own_late_events_refuse_sends_until_deliveries_are_on_time(
    people, sockets, chat_settings
):
    chat_settings(SEND_MAX_LAG=0.2, SEND_RETRY_AFTER=0.5)
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    layer = get_channel_layer()
    client_id = str(uuid.uuid4())

    # Another worker's event, stamped a second ago on its own clock: not this worker's lag.
    await layer.group_send(events.STAFF_GROUP, published_ago(1.0, worker="another-worker"))
    await lobby.expect(events.RESYNC)
    assert sendqueue.delivery_lag.current() < 0.2

    # This worker's own event reaches the lobby a second after it was published.
    await layer.group_send(events.STAFF_GROUP, published_ago(1.0))
    await lobby.expect(events.RESYNC)
    assert sendqueue.delivery_lag.current() >= 1.0
    make_demand()  # a busy site: a late worker offered a few sends takes them
    await alice.send("message:send", {"text": "hi", "client_id": client_id}, ref="m1")
    refused = await alice.expect("error", where=lambda f: f.get("ref") == "m1")
    assert refused["data"]["code"] == "overloaded"
    assert refused["data"]["retry_after"] >= 0.5
    assert await db(Message.objects.count)() == 0

    # Nothing late since: after two windows the worker takes sends again, and the retry
    # with the same client_id is stored once.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while sendqueue.delivery_lag.current() >= 0.2:
        assert loop.time() < deadline, "the delivery lag never went down"
        await asyncio.sleep(0.02)
    await alice.send("message:send", {"text": "hi", "client_id": client_id}, ref="m2")
    sent = await alice.expect("message:sent", where=lambda f: f.get("ref") == "m2")
    assert sent["data"]["created"] is True
    # The message's own event, published by this worker, reached the lobby on time.
    new = await lobby.expect(events.MESSAGE_NEW)
    assert new["data"]["message"]["client_id"] == client_id
    assert sendqueue.delivery_lag.current() < 0.2
    assert await db(Message.objects.filter(client_id=client_id).count)() == 1


def slow_client(app: Any, seconds: float = 0.3) -> Any:
    """Serve ``app`` as uvicorn does to a client whose buffers are full: every frame to it
    waits until the client has read enough (here: ``seconds``)."""

    async def served(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_when_read(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                await asyncio.sleep(seconds)
            await send(message)

        await app(scope, receive, send_when_read)

    return served


async def test_events_that_waited_behind_a_slow_client_push_back_nobody(
    people, sockets, chat_settings
):
    chat_settings(SEND_MAX_LAG=0.2)
    connected, code, slow = await open_socket("/ws/chat/admin/", people["staff"], wrap=slow_client)
    assert connected, code
    sockets.append(slow)
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    await slow.expect("hello", timeout=5)

    # Five of this worker's events at once: the slow lobby sends each 0.3 s after the one
    # before, so the last goes out more than a second after it was published.
    layer = get_channel_layer()
    for _ in range(5):
        await layer.group_send(events.STAFF_GROUP, published_ago(0.0))
    for _ in range(5):
        await slow.expect(events.RESYNC, timeout=5)

    assert sendqueue.delivery_lag.current() < 0.2  # the client's wait, not the worker's
    await alice.send("message:send", {"text": "hi", "client_id": str(uuid.uuid4())}, ref="m")
    sent = await alice.expect("message:sent", where=lambda f: f.get("ref") == "m")
    assert sent["data"]["created"] is True
