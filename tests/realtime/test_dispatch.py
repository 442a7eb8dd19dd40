"""Frames and group events never wait for the worker's database thread unless they need
the database: Channels' own dispatch hops onto that thread (close_old_connections) for
every message, which queued every delivery behind the sends under load (issue #14)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from django_support_chat import events
from django_support_chat.models import Conversation

from .conftest import make_user, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
async def conversation(layer: str) -> Any:
    def create() -> Any:
        alice = make_user("alice")
        return Conversation.objects.create(customer=alice), alice

    return await database_sync_to_async(create)()


async def test_events_and_heartbeats_pass_while_the_database_thread_is_busy(conversation, sockets):
    conv, alice = conversation
    connected, code, socket = await open_socket(f"/ws/chat/user/{conv.pk}/", alice)
    assert connected, code
    sockets.append(socket)
    await socket.expect("hello")

    # Hold the one database thread (thread-sensitive sync_to_async) until released.
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(20)

    holder = asyncio.ensure_future(database_sync_to_async(hold)())
    try:
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        assert started.is_set()
        event = events.envelope(events.TYPING_START, {"conversation_id": conv.pk, "side": "staff"})
        await get_channel_layer().group_send(
            events.conversation_group(conv.pk), events.group_message(event)
        )
        frame = await socket.expect(events.TYPING_START, timeout=3)
        assert frame["data"]["conversation_id"] == conv.pk
        await socket.send("heartbeat", ref="h1")
        reply = await socket.expect("heartbeat", timeout=3)
        assert reply.get("ref") == "h1"
        assert not holder.done()  # both arrived while the thread was still held
    finally:
        release.set()
        await holder
