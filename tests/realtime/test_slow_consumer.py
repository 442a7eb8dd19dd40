"""A socket that cannot keep up (docs/operations.md, "Runbook", "A slow consumer").

One uvicorn worker of the example project on Redis, with uvicorn's keepalive ping every
two seconds and a pong deadline of two seconds (``UVICORN_WS_PING_INTERVAL``/``_TIMEOUT``; the
defaults are 20 s each). A staff lobby socket whose client stops reading (a 4 KB receive
buffer, a client queue of one frame, never ``recv()``) next to a lobby that reads; customers
send messages of 5,000 characters until far more than the stuck socket's buffers hold.

Asserted: the lobby that reads gets every message live while the other one is stuck (one
socket's full buffer holds up no other socket); the server ends the stuck connection by
itself (its ``ws.close`` line is in the worker's log); the worker goes on serving sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
import redis
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect as ws_connect

from django_support_chat import tokens
from django_support_chat.models import Conversation, Message

from ..e2e.conftest import start_server, stop_server
from .conftest import redis_url
from .test_multiworker import open_client, send_until_stored
from .test_redis_outage import log_of

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 30
ROUNDS = 3  # 90 messages, about 450 KB for each lobby
TEXT = "x" * 5000  # MAX_MESSAGE_LENGTH: about 5 KB per message:new frame


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Any:
    url = redis_url()
    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("E2E_SERVER_LOG_LEVEL", "info")  # the chat's ws.close lines
    env = {
        "REDIS_URL": url,
        "UVICORN_WS_PING_INTERVAL": "2",
        "UVICORN_WS_PING_TIMEOUT": "2",
        "SUPPORT_CHAT_WS_MAX_SOCKETS_PER_USER": "100",
        "SUPPORT_CHAT_HEARTBEAT_INTERVAL": "2",
        "SUPPORT_CHAT_PRESENCE_TTL": "6",
    }
    process, base = start_server(env)
    yield base
    stop_server(process)


async def open_stuck(base: str, user: Any) -> Any:
    """A lobby socket whose client reads the hello and then nothing more."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = base.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    ws = await ws_connect(
        f"ws://{host}:{port}/ws/chat/admin/?token={tokens.make_token(user)}",
        origin="http://localhost",
        sock=sock,
        max_queue=1,
        ping_interval=None,  # the client sends nothing of its own
        compression=None,
    )
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello"
    return ws


def test_a_stuck_socket_is_closed_and_holds_up_nobody(worker: str) -> None:
    User = get_user_model()
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    slow = User.objects.create_user("slow", password="pw", is_staff=True)
    customers = [User.objects.create_user(f"c{i}", password="pw") for i in range(CUSTOMERS)]
    conversations = [Conversation.objects.create(customer=c) for c in customers]
    base_ws = worker.replace("http://", "ws://")

    store = redis.Redis.from_url(redis_url())

    def live_entries(user: Any) -> int:
        """The user's live presence entries (PRESENCE_KEY_PREFIX's default)."""
        return int(store.zcount(f"support_chat:presence:user:{user.pk}", time.time(), "+inf"))

    async def scenario() -> None:
        stuck = await open_stuck(worker, slow)
        lobby = await open_client(base_ws, "/ws/chat/admin/", staff)
        people = [
            await open_client(base_ws, f"/ws/chat/user/{conv.pk}/", user)
            for user, conv in zip(customers, conversations, strict=True)
        ]
        got: set[int] = set()

        async def read_lobby() -> None:  # reads all along, so it answers pings in time
            while True:
                frame = await lobby.expect("message:new", timeout=60)
                got.add(frame["data"]["message"]["id"])

        reader = asyncio.ensure_future(read_lobby())
        sent: set[int] = set()
        for round_ in range(ROUNDS):
            # At once, as the customers would; a send refused as "overloaded" goes again.
            frames = await asyncio.gather(*(send_until_stored(p, TEXT) for p in people))
            sent.update(frame["data"]["message"]["id"] for frame in frames)
            assert len(sent) == CUSTOMERS * (round_ + 1)
        for _ in range(600):
            if sent <= got:
                break
            await asyncio.sleep(0.05)
        assert sent <= got, f"the reading lobby got {len(got & sent)} of {len(sent)}"
        reader.cancel()

        # The server gives up on the stuck socket by itself: its user goes offline (the
        # socket left presence) while the reading lobby's user stays online.
        for _ in range(300):
            if not await asyncio.to_thread(live_entries, slow):
                break
            await asyncio.sleep(0.1)
        assert not await asyncio.to_thread(live_entries, slow), "the stuck socket still counts"
        assert await asyncio.to_thread(live_entries, staff)

        # The worker still serves: a new socket connects and hears a new message.
        fresh = await open_client(base_ws, "/ws/chat/admin/", staff)
        await send_until_stored(people[0], "after")
        await fresh.expect("message:new", where=lambda f: f["data"]["message"]["text"] == "after")
        for client in [lobby, fresh, *people]:
            await client.close()
        stuck.transport.abort()

    asyncio.run(scenario())
    assert Message.objects.count() == ROUNDS * CUSTOMERS + 1
    assert "Traceback" not in log_of(worker).read_text(errors="replace")
