"""Faults for real: a redis-server of the test's own is killed (SIGKILL) for 5 seconds and
started again on the same port while two uvicorn workers carry traffic both ways, over
WebSocket and REST; then a worker is sent SIGTERM under load.

The clients follow docs/protocol.md ("Delivery guarantees"): they keep the highest
sequence number they hold without a hole (H), ignore duplicates, sync ``after_seq=H``
when a ``message:new`` skips past H + 1 or the server sends ``resync``, and after a
reconnect send again what was not acknowledged (same ``client_id``) and sync.

Asserted: every acknowledged message is stored once; both sides end up holding every
message, seq 1..n without a hole, within a few seconds of Redis coming back; each worker
told its sockets to resync; no 5xx in the workers' access logs, no ``server_error`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from django_support_chat.models import Conversation, Message

from ..e2e.conftest import ROOT, start_server, stop_server
from ..servers import free_port
from .conftest import session_cookie

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

OUTAGE = 5.0  # seconds without Redis
CAUGHT_UP_WITHIN = 10.0  # seconds after Redis is back (docs: typically 2-3, at most 15)
CSRF = "k" * 32


class RedisServer:
    """A redis-server this test owns: it can kill it and start it again on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="support-chat-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--maxclients",
                "10000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    assert connection.vendor == "postgresql", "the fault tests need PostgreSQL (DATABASE_URL)"
    monkeypatch.setenv("E2E_SERVER_LOG_LEVEL", "info")  # access lines: the 5xx check
    servers = [start_server({"REDIS_URL": redis_server.url}) for _ in range(2)]
    yield servers
    for process, _ in servers:
        if process.poll() is None:
            stop_server(process)


def log_of(base: str) -> Path:
    return ROOT / f".e2e-server-{base.rsplit(':', 1)[1]}.log"


def server_errors(bases: list[str]) -> list[str]:
    lines = []
    for base in bases:
        text = log_of(base).read_text(errors="replace")
        lines += [line for line in text.splitlines() if re.search(r'" 5\d\d\b', line)]
        lines += [line for line in text.splitlines() if "Internal Server Error" in line]
    return lines


class Peer:
    """One side of the conversation: a socket that follows the documented client rule."""

    def __init__(self, name: str, user: Any, conversation: Conversation, path: str) -> None:
        self.name, self.user, self.conversation, self.path = name, user, conversation, path
        self.cookie = session_cookie(user)
        self.seen: dict[int, tuple[float, str]] = {}  # seq -> (first seen at, client_id)
        self.high = 0  # H: the highest seq held with nothing missing below it
        self.duplicates = 0
        self.acked: dict[str, int] = {}  # client_id -> seq, acknowledged to this side
        self.pending: dict[str, str] = {}  # client_id -> text, sent but not acknowledged
        self.errors: list[dict[str, Any]] = []
        self.resyncs: list[float] = []
        self.syncing = False
        self.ws: Any = None
        self.base = ""
        self.closed = asyncio.Event()

    # -- the socket --------------------------------------------------------------------

    async def connect(self, base: str) -> None:
        self.base = base
        self.closed = asyncio.Event()
        self.ws = await ws_connect(
            base.replace("http://", "ws://") + self.path,
            origin="http://localhost",
            additional_headers={"Cookie": f"{django_settings.SESSION_COOKIE_NAME}={self.cookie}"},
        )
        hello = json.loads(await self.ws.recv())
        assert hello["type"] == "hello", hello
        interval = hello["data"]["heartbeat_interval"]
        self.reader = asyncio.ensure_future(self._read())
        self.beat = asyncio.ensure_future(self._heartbeats(interval))
        self.syncing = False
        await self.sync()  # catch up after every (re)connect
        for client_id, text in list(self.pending.items()):  # resend, same client_id
            await self._frame("message:send", {"text": text, "client_id": client_id})

    async def close(self) -> None:
        self.beat.cancel()
        await self.ws.close()
        await self.closed.wait()

    async def _frame(self, type_: str, data: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):  # a reconnect resends
            await self.ws.send(json.dumps({"type": type_, "data": data}))

    async def _heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._frame("heartbeat", {})

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                kind, data = frame["type"], frame["data"]
                if kind == "message:new" and data["conversation_id"] == self.conversation.pk:
                    await self._got(data["message"])
                elif kind == "message:sent":
                    message = data["message"]
                    self.acked[message["client_id"]] = message["seq"]
                    self.pending.pop(message["client_id"], None)
                    await self._got(message)
                elif kind == "sync":
                    for message in data["messages"]:
                        await self._got(message, from_sync=True)
                    self.syncing = False
                    behind = data["conversation"]["last_seq"] > self.high
                    if data["has_more"] or behind or max(self.seen, default=0) > self.high:
                        await self.sync()
                elif kind == "resync":
                    self.resyncs.append(time.monotonic())
                    self.syncing = False  # an answer may have been lost with the layer
                    await self.sync()
                elif kind == "error":
                    self.errors.append(data)
        except ConnectionClosed:
            pass
        finally:
            self.beat.cancel()
            self.closed.set()

    async def _got(self, message: dict[str, Any], from_sync: bool = False) -> None:
        seq = message["seq"]
        if seq in self.seen:
            self.duplicates += 1
            return
        self.seen[seq] = (time.monotonic(), message["client_id"])
        while self.high + 1 in self.seen:
            self.high += 1
        if not from_sync and seq > self.high:  # a hole below it: fill it by seq
            await self.sync()

    async def sync(self) -> None:
        if not self.syncing:
            self.syncing = True
            await self._frame("sync", {"after_seq": self.high})

    # -- sending -----------------------------------------------------------------------

    async def send_ws(self, text: str) -> None:
        client_id = str(uuid.uuid4())
        self.pending[client_id] = text
        await self._frame("message:send", {"text": text, "client_id": client_id})

    async def send_rest(self, text: str, bases: list[str]) -> int:
        """POST the message, trying the next worker (same client_id) if one is gone;
        returns the HTTP status of the answer that counted."""
        client_id = str(uuid.uuid4())
        self.pending[client_id] = text
        body = json.dumps({"text": text, "client_id": client_id}).encode()
        url = f"/api/chat/conversations/{self.conversation.pk}/messages/"
        cookie = f"{django_settings.SESSION_COOKIE_NAME}={self.cookie}; csrftoken={CSRF}"
        headers = {"Content-Type": "application/json", "Cookie": cookie, "X-CSRFToken": CSRF}

        def post(base: str) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(base + url, body, headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, {}

        for base in bases:
            try:
                status, data = await asyncio.to_thread(post, base)
            except OSError:
                continue  # that worker is gone: the next one, same client_id
            if status in (200, 201):
                self.acked[client_id] = data["seq"]
                self.pending.pop(client_id, None)
            return status
        return 0


def holds_everything(peer: Peer, seqs: set[int]) -> bool:
    return seqs <= set(peer.seen)


async def wait_until(predicate: Any, timeout: float, what: str) -> float:
    """Seconds it took for ``predicate()`` to hold; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def people() -> tuple[Any, Any, Conversation]:
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw")
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    return alice, staff, Conversation.objects.create(customer=alice)


def check_stored(conversation: Conversation, peers: list[Peer]) -> list[int]:
    """Every acknowledged message stored once; seqs 1..n; each peer holds exactly them."""
    rows = list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("seq", "client_id")
    )
    stored = {str(client_id): seq for seq, client_id in rows}
    assert len(stored) == len(rows), "a client_id stored twice"
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1)), "holes in seq"
    for peer in peers:
        for client_id, seq in peer.acked.items():
            assert stored.get(client_id) == seq, f"{peer.name}: acknowledged {client_id} lost"
        assert not peer.pending, f"{peer.name}: never acknowledged {peer.pending}"
        held = {seq: client_id for seq, (_, client_id) in peer.seen.items()}
        assert held == {seq: str(cid) for seq, cid in rows}, f"{peer.name} misses messages"
    return [seq for seq, _ in rows]


def test_a_redis_outage_loses_nothing(workers, redis_server):
    alice, staff, conversation = people()
    (_, base_a), (_, base_b) = workers
    customer = Peer("customer", alice, conversation, f"/ws/chat/user/{conversation.pk}/")
    agent = Peer("staff", staff, conversation, f"/ws/chat/admin/{conversation.pk}/")
    statuses: list[int] = []
    timings: dict[str, float] = {}

    async def traffic(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            # both ways, both transports; each peer's REST goes to the other worker
            if n % 2:
                await customer.send_ws(f"customer ws {n}")
                await agent.send_ws(f"staff ws {n}")
            else:
                statuses.append(await customer.send_rest(f"customer rest {n}", [base_b]))
                statuses.append(await agent.send_rest(f"staff rest {n}", [base_a]))
            await asyncio.sleep(0.4)  # 2 sends per 0.8 s per user: under 30 per minute

    async def scenario() -> None:
        await customer.connect(base_a)
        await agent.connect(base_b)
        stop = asyncio.Event()
        sender = asyncio.ensure_future(traffic(stop))
        await wait_until(lambda: len(agent.seen) >= 4, 10, "live traffic before the outage")

        redis_server.kill()
        await asyncio.sleep(OUTAGE)
        redis_server.start()
        back = time.monotonic()
        await asyncio.sleep(1.0)  # a little traffic after the recovery too
        stop.set()
        await sender
        # Nothing more is sent: every acknowledged message must reach both sides.
        await wait_until(
            lambda: not customer.pending and not agent.pending, 15, "all sends acknowledged"
        )
        everything = set(customer.acked.values()) | set(agent.acked.values())
        for peer in (customer, agent):
            await wait_until(
                lambda peer=peer: holds_everything(peer, everything),
                CAUGHT_UP_WITHIN,
                f"{peer.name} holds every message",
            )
            timings[peer.name] = time.monotonic() - back
        await wait_until(
            lambda: customer.resyncs and agent.resyncs, CAUGHT_UP_WITHIN, "resync frames"
        )
        timings["resync customer"] = customer.resyncs[0] - back
        timings["resync staff"] = agent.resyncs[0] - back
        for peer in (customer, agent):
            await peer.close()

    asyncio.run(scenario())
    seqs = check_stored(conversation, [customer, agent])
    assert len(seqs) >= 12
    assert statuses and all(status in (200, 201) for status in statuses), statuses
    assert not [e for p in (customer, agent) for e in p.errors], [customer.errors, agent.errors]
    assert server_errors([base_a, base_b]) == []
    print(f"\n{len(seqs)} messages; caught up / resync after Redis came back (s): {timings}")


def test_a_worker_sigterm_under_load_loses_nothing(workers):
    alice, staff, conversation = people()
    (process_a, base_a), (_, base_b) = workers
    customer = Peer("customer", alice, conversation, f"/ws/chat/user/{conversation.pk}/")
    agent = Peer("staff", staff, conversation, f"/ws/chat/admin/{conversation.pk}/")
    statuses: list[int] = []

    async def keep_connected(peer: Peer, stop: asyncio.Event) -> None:
        """Reconnect to the surviving worker when the socket closes (1012 on SIGTERM)."""
        while not stop.is_set():
            await peer.closed.wait()
            if stop.is_set():
                return
            for attempt in range(50):
                try:
                    await peer.connect(base_b)
                    break
                except OSError:
                    await asyncio.sleep(0.1 * (attempt + 1))

    async def traffic(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 2:
                await customer.send_ws(f"customer ws {n}")
                await agent.send_ws(f"staff ws {n}")
            else:
                statuses.append(await customer.send_rest(f"customer rest {n}", [base_a, base_b]))
                statuses.append(await agent.send_rest(f"staff rest {n}", [base_b]))
            await asyncio.sleep(0.4)

    async def scenario() -> None:
        await customer.connect(base_a)
        await agent.connect(base_b)
        stop = asyncio.Event()
        watchers = [asyncio.ensure_future(keep_connected(p, stop)) for p in (customer, agent)]
        sender = asyncio.ensure_future(traffic(stop))
        await wait_until(lambda: len(agent.seen) >= 4, 10, "live traffic before the SIGTERM")
        process_a.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process_a.wait, 30)
        await wait_until(lambda: customer.base == base_b, 15, "customer reconnected to B")
        await asyncio.sleep(1.5)
        stop.set()
        await sender
        await wait_until(
            lambda: not customer.pending and not agent.pending, 15, "all sends acknowledged"
        )
        everything = set(customer.acked.values()) | set(agent.acked.values())
        for peer in (customer, agent):
            await wait_until(
                lambda peer=peer: holds_everything(peer, everything), 10, f"{peer.name} caught up"
            )
        for watcher in watchers:
            watcher.cancel()
        for peer in (customer, agent):
            await peer.close()

    asyncio.run(scenario())
    seqs = check_stored(conversation, [customer, agent])
    assert len(seqs) >= 8
    assert statuses and all(status in (200, 201) for status in statuses), statuses
    assert server_errors([base_a, base_b]) == []


def test_a_layer_that_stays_down_closes_the_sockets_with_1012(redis_server):
    """Redis gone for good: after three heartbeat intervals of trouble the worker closes its
    sockets with 1012 (service restart), so clients reconnect, maybe to a healthier worker,
    and catch up by seq. A 1 s interval here: the bound is 3 s."""
    interval = 1
    alice, _staff, conversation = people()
    process, base = start_server(
        {
            "REDIS_URL": redis_server.url,
            "SUPPORT_CHAT_HEARTBEAT_INTERVAL": str(interval),
            "SUPPORT_CHAT_PRESENCE_TTL": str(3 * interval),
        }
    )
    customer = Peer("customer", alice, conversation, f"/ws/chat/user/{conversation.pk}/")

    async def scenario() -> float:
        await customer.connect(base)  # heartbeats every interval: never silent (4408)
        redis_server.kill()
        killed = time.monotonic()
        await asyncio.wait_for(customer.closed.wait(), timeout=3 * interval + 15)
        return time.monotonic() - killed

    try:
        after = asyncio.run(scenario())
    finally:
        stop_server(process)
    assert customer.ws.close_code == 1012, customer.ws.close_code
    assert after >= 3 * interval - 0.5, f"closed after {after:.1f}s, before the bound"
