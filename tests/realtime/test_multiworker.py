"""Two uvicorn processes sharing one Redis and one PostgreSQL: a customer on one worker and
staff on the other chat live; then a few hundred sockets held at once without errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from websockets.asyncio.client import connect as ws_connect

from django_support_chat import tokens
from django_support_chat.models import Conversation, Message

from ..e2e.conftest import start_server, stop_server
from .conftest import redis_url

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def workers() -> Any:
    assert connection.vendor == "postgresql", (
        "the multi-worker test needs PostgreSQL (DATABASE_URL)"
    )
    url = redis_url()
    import redis

    redis.Redis.from_url(url).flushdb()
    # LOBBIES sockets of one staff user: above the default WS_MAX_SOCKETS_PER_USER.
    env = {"REDIS_URL": url, "SUPPORT_CHAT_WS_MAX_SOCKETS_PER_USER": "1000"}
    servers = [start_server(env) for _ in range(2)]
    yield [base.replace("http://", "ws://") for _, base in servers]
    for process, _ in servers:
        stop_server(process)


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.hello: dict[str, Any] = {}

    async def heartbeats(self, interval: float) -> None:
        """Like a real client: without heartbeats the server drops the socket (4408)."""
        try:
            while True:
                await asyncio.sleep(interval)
                await self.send("heartbeat")
        except (asyncio.CancelledError, Exception):
            return

    async def close(self) -> None:
        self.beat.cancel()
        await self.ws.close()

    async def send(self, type_: str, data: dict[str, Any] | None = None) -> None:
        await self.ws.send(json.dumps({"type": type_, "data": data or {}}))

    async def expect(
        self, type_: str, where: Any = None, timeout: float = 5, also: Any = None
    ) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``where``), or any frame ``also`` accepts."""

        async def wait() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.ws.recv())
                self.frames.append(frame)
                if frame["type"] == type_ and (where is None or where(frame)):
                    return frame
                if also is not None and also(frame):
                    return frame

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            seen = [(f["type"], f["data"]) for f in self.frames[-10:]]
            raise AssertionError(
                f"no {type_} frame within {timeout}s; last frames: {seen}"
            ) from None


async def open_client(base: str, path: str, user: Any) -> Client:
    token = tokens.make_token(user)
    ws = await ws_connect(f"{base}{path}?token={token}", origin="http://localhost")
    client = Client(ws)
    client.hello = await client.expect("hello")
    client.beat = asyncio.ensure_future(
        client.heartbeats(client.hello["data"]["heartbeat_interval"])
    )
    return client


async def send_until_stored(client: Client, text: str, timeout: float = 30) -> dict[str, Any]:
    """Send ``text`` like a real client: a send refused with "overloaded" (the worker's
    SEND_QUEUE_LIMIT or SEND_MAX_LAG) goes again after ``retry_after`` with the same
    client_id; returns the ``message:sent`` frame."""
    data = {"text": text, "client_id": str(uuid.uuid4())}
    for _ in range(20):
        await client.send("message:send", data)
        answer = await client.expect(
            "message:sent",
            timeout=timeout,
            also=lambda f: f["type"] == "error" and f["data"]["code"] == "overloaded",
        )
        if answer["type"] == "message:sent":
            return answer
        await asyncio.sleep(answer["data"]["retry_after"])
    raise AssertionError(f"{text[:40]!r} was refused 20 times")


def test_customer_and_staff_on_different_workers(workers):
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw")
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    conversation = Conversation.objects.create(customer=alice)
    worker_a, worker_b = workers

    async def scenario() -> None:
        lobby = await open_client(worker_b, "/ws/chat/admin/", staff)
        customer = await open_client(worker_a, f"/ws/chat/user/{conversation.pk}/", alice)
        online = await lobby.expect("presence:update", where=lambda f: f["data"]["side"] == "user")
        assert online["data"] == {"user_id": alice.pk, "online": True, "side": "user"}

        # staff (on worker B) is online, as the customer (on worker A) learns on connect
        assert customer.hello["data"]["presence"]["support_online"] is True
        agent = await open_client(worker_b, f"/ws/chat/admin/{conversation.pk}/", staff)
        assert agent.hello["data"]["presence"] == {
            "user_id": alice.pk,
            "online": True,
            "side": "user",
        }

        # customer -> staff, live across workers
        await customer.send(
            "message:send", {"text": "Hello from A", "client_id": str(uuid.uuid4())}
        )
        sent = await customer.expect("message:sent")
        live = await agent.expect("message:new")
        assert live["data"]["message"]["id"] == sent["data"]["message"]["id"]
        await lobby.expect("message:new")

        # typing, staff -> customer
        await agent.send("typing:start")
        typing = await customer.expect("typing:start")
        assert typing["data"]["side"] == "staff"

        # staff -> customer
        await agent.send("message:send", {"text": "Hi from B", "client_id": str(uuid.uuid4())})
        reply = await customer.expect(
            "message:new", where=lambda f: f["data"]["message"]["sender_side"] == "staff"
        )
        assert reply["data"]["message"]["text"] == "Hi from B"
        await customer.expect("typing:stop")  # sending ends the typing indicator

        # receipts both ways
        reply_id = reply["data"]["message"]["id"]
        await customer.send("message:delivered", {"up_to_id": reply_id})
        delivered = await agent.expect("message:delivered")
        assert delivered["data"]["side"] == "user" and delivered["data"]["up_to_id"] == reply_id
        await customer.send("message:read", {})
        read = await agent.expect("message:read", where=lambda f: f["data"]["side"] == "user")
        assert read["data"]["up_to_id"] == reply_id

        # presence: the customer leaves, staff on the other worker sees it
        await customer.close()
        offline = await lobby.expect(
            "presence:update", where=lambda f: f["data"].get("user_id") == alice.pk
        )
        assert offline["data"]["online"] is False
        for client in (lobby, agent):
            await client.close()

    asyncio.run(scenario())
    assert Message.objects.filter(conversation=conversation).count() == 2
    conversation.refresh_from_db()
    # staff replied (which reads), the customer read the reply
    assert conversation.unread_user_count == 0 and conversation.unread_staff_count == 0


CUSTOMERS = 200
LOBBIES = 100


def test_a_few_hundred_sockets_on_redis(workers):
    """300 sockets over two workers; every lobby receives every message; no socket errors."""
    User = get_user_model()
    customers = User.objects.bulk_create([User(username=f"c{i}") for i in range(CUSTOMERS)])
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    conversations = Conversation.objects.bulk_create([Conversation(customer=c) for c in customers])

    async def scenario() -> dict[str, int]:
        lobbies = []
        for i in range(LOBBIES):  # ramp up in small batches
            lobbies.append(await open_client(workers[i % 2], "/ws/chat/admin/", staff))
        people = []
        for i, (user, conv) in enumerate(zip(customers, conversations, strict=True)):
            people.append(await open_client(workers[i % 2], f"/ws/chat/user/{conv.pk}/", user))

        sent = await asyncio.gather(
            *(send_until_stored(p, f"hi {i}") for i, p in enumerate(people))
        )
        # Each client_id was stored once: resends after "overloaded" never stored twice.
        assert sum(s["data"]["created"] for s in sent) == CUSTOMERS
        expected = {s["data"]["message"]["id"] for s in sent}

        async def drain(lobby: Client) -> set[int]:
            got: set[int] = {
                f["data"]["message"]["id"] for f in lobby.frames if f["type"] == "message:new"
            }
            while not expected <= got:
                frame = await lobby.expect("message:new", timeout=30)
                got.add(frame["data"]["message"]["id"])
            return got

        received = await asyncio.gather(*(drain(lobby) for lobby in lobbies))
        closed_with_error = [c for c in lobbies + people if c.ws.close_code not in (None, 1000)]
        for client in lobbies + people:
            await client.close()
        return {
            "deliveries": sum(len(r & expected) for r in received),
            "errors": len(closed_with_error),
        }

    result = asyncio.run(scenario())
    assert result == {"deliveries": CUSTOMERS * LOBBIES, "errors": 0}
    assert Message.objects.count() == CUSTOMERS
