"""``notification:new``: every Notification row the services write reaches its recipient's
sockets (the user group every socket joins) once it commits; nobody else's. On the
in-memory layer and on Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from django_support_chat import services
from django_support_chat.models import Conversation, Notification

from .conftest import make_user, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice", first_name="Alice")
        staff = make_user("staff", is_staff=True)
        staff2 = make_user("staff2", is_staff=True)
        conversation = Conversation.objects.create(customer=alice)
        return {"alice": alice, "staff": staff, "staff2": staff2, "conv": conversation}

    return await db(create)()


async def connect(sockets: list, path: str, user: Any):
    connected, code, socket = await open_socket(path, user)
    assert connected, f"{path} refused with {code}"
    sockets.append(socket)
    await socket.expect("hello")
    return socket


async def test_assignment_is_told_to_the_assignee_only(people, sockets):
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    # A conversation socket of the assignee joins the user group too.
    chat = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    actor_lobby = await connect(sockets, "/ws/chat/admin/", people["staff2"])

    await db(services.assign)(conv, people["staff2"], people["staff"])

    frame = await lobby.expect("notification:new")
    stored = await db(Notification.objects.get)(user=people["staff"])
    data = frame["data"]
    assert data["id"] == stored.pk
    assert data["type"] == "assignment"
    assert data["conversation_id"] == conv.pk and data["message_id"] is None
    assert data["read"] is False
    assert data["conversation"]["id"] == conv.pk
    assert data["conversation"]["customer"]["name"] == "Alice"
    assert data["conversation"]["assigned_to"]["id"] == people["staff"].pk
    await chat.expect("notification:new", where=lambda f: f["data"]["id"] == stored.pk)
    # The actor sees the conversation:updated, never someone else's notification.
    await actor_lobby.expect("conversation:updated")
    assert await actor_lobby.nothing()


async def test_self_assignment_writes_no_notification_and_sends_none(people, sockets):
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    await db(services.assign)(conv, people["staff"], people["staff"])
    await lobby.expect("conversation:updated")
    assert await lobby.nothing()
    assert not await db(Notification.objects.exists)()


async def test_customer_message_tells_the_assignee_and_a_reply_tells_the_customer(people, sockets):
    conv = people["conv"]
    await db(services.assign)(conv, people["staff2"], people["staff"])
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    alice = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])

    await alice.send("message:send", {"text": "hello?", "client_id": str(uuid.uuid4())})
    sent = (await alice.expect("message:sent"))["data"]["message"]
    told = await lobby.expect("notification:new")
    assert told["data"]["type"] == "message_received"
    assert told["data"]["message_id"] == sent["id"]

    await db(services.send_message)(conv, people["staff"], "hi Alice", uuid.uuid4())
    reply = await alice.expect("notification:new")
    assert reply["data"]["type"] == "message_received"
    assert reply["data"]["conversation_id"] == conv.pk
    # The customer's copy of the conversation counts the customer's unread.
    assert reply["data"]["conversation"]["unread_count"] == 1

    await db(services.close)(conv, people["staff"])
    closed = await alice.expect("notification:new")
    assert closed["data"]["type"] == "conversation_closed"


async def test_nothing_is_sent_when_the_transaction_rolls_back(people, sockets):
    conv = people["conv"]
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])

    def assign_then_fail() -> None:
        with transaction.atomic():
            services.assign(conv, people["staff2"], people["staff"])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await db(assign_then_fail)()
    assert await lobby.nothing(timeout=0.5)
    assert not await db(Notification.objects.exists)()
