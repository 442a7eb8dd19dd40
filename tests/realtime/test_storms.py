"""Presence and heartbeats under storms.

- Fast, through the full ASGI stack on both layers: a socket whose ``connect()`` is slower
  than two heartbeat intervals, or whose consumer is busy with one frame that long, is not
  closed as silent (4408); a staff lobby is told when users it shows expire (a worker
  died, so nobody broadcast their offline event).
- Slow, one uvicorn worker of the example project on Redis: 2,000 sockets opened at once
  with session cookies, heartbeating every 2 s, held for 4 intervals: no 4408. Then all
  of them dropped without close frames: a staff lobby gets every user's offline event
  within PRESENCE_TTL and the store shows nobody online, also a sweep later.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from django_support_chat import events
from django_support_chat.models import Conversation
from django_support_chat.presence import get_presence_store
from django_support_chat.realtime import consumers

from .conftest import Socket, make_user, open_socket, redis_url

db = database_sync_to_async


# -- fast: slow connects, busy consumers, expired entries ---------------------------------


@pytest.fixture
def people(transactional_db: None) -> dict[str, Any]:
    alice = make_user("alice")
    return {
        "alice": alice,
        "bob": make_user("bob"),
        "staff": make_user("sam", is_staff=True),
        "conv": Conversation.objects.create(customer=alice),
    }


async def connect(sockets: list[Socket], path: str, user: Any) -> Socket:
    connected, code, socket = await open_socket(path, user)
    assert connected, f"{path} refused with {code}"
    sockets.append(socket)
    return socket


async def beat_for(seconds: float, every: float, *socks: Socket) -> None:
    """Heartbeats like a client; the socket must stay open throughout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await asyncio.sleep(every)
        for socket in socks:
            await socket.send("heartbeat")
            await socket.expect("heartbeat", timeout=4)  # a close would fail here


async def keep_beating(socket: Socket, every: float = 0.5) -> None:
    """Background heartbeats (the replies are skipped by ``expect``)."""
    while True:
        await asyncio.sleep(every)
        await socket.send("heartbeat")


@pytest.mark.asyncio
async def test_a_connect_slower_than_two_intervals_is_not_silent(
    people, sockets, chat_settings, monkeypatch
):
    chat_settings(HEARTBEAT_INTERVAL=1, PRESENCE_TTL=2)
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])  # the watchdog runs
    original = consumers.CustomerConsumer.hello

    async def slow_hello(self: Any) -> dict[str, Any]:
        await asyncio.sleep(2.5)  # a connect storm: the database thread is queued up
        return await original(self)

    monkeypatch.setattr(consumers.CustomerConsumer, "hello", slow_hello)
    beating = asyncio.ensure_future(keep_beating(lobby))
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    beating.cancel()
    # Like a client: its first heartbeat one interval (here half) after hello.
    await beat_for(3.5, 0.5, alice, lobby)


@pytest.mark.asyncio
async def test_a_consumer_busy_with_one_frame_is_not_silent(
    people, sockets, chat_settings, monkeypatch
):
    """Frames wait behind a slow handler (they are not seen yet): no 4408 meanwhile."""
    chat_settings(HEARTBEAT_INTERVAL=1, PRESENCE_TTL=2)
    alice = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    original = consumers.CustomerConsumer.on_heartbeat
    calls = []

    async def on_heartbeat(self: Any, data: dict[str, Any], ref: Any) -> None:
        calls.append(ref)
        if ref == "slow":
            await asyncio.sleep(2.6)
        await original(self, data, ref)

    monkeypatch.setattr(consumers.CustomerConsumer, "on_heartbeat", on_heartbeat)
    await alice.send("heartbeat", ref="slow")
    for i in range(5):  # queued behind the slow one
        await asyncio.sleep(0.5)
        await alice.send("heartbeat", ref=f"q{i}")
    await alice.expect("heartbeat", timeout=4, where=lambda f: f.get("ref") == "slow")
    for i in range(5):
        await alice.expect("heartbeat", where=lambda f, i=i: f.get("ref") == f"q{i}")
    await beat_for(2.5, 0.5, alice)


@pytest.mark.asyncio
async def test_the_lobby_is_told_when_users_it_shows_expire(people, sockets, chat_settings):
    """Users on a worker that died: nobody broadcasts their offline event. The lobby
    re-checks whom it was told (an event, or a presence:state answer) to be online."""
    chat_settings(HEARTBEAT_INTERVAL=1, PRESENCE_TTL=2)
    lobby = await connect(sockets, "/ws/chat/admin/", people["staff"])
    beating = asyncio.ensure_future(keep_beating(lobby))
    store = get_presence_store()
    alice, bob = people["alice"].pk, people["bob"].pk
    # alice: an entry and its online event, from a worker that then died
    await store.connect(alice, "dead-worker.alice", False)
    await get_channel_layer().group_send(
        events.STAFF_GROUP,
        {
            **events.group_message(
                events.envelope(
                    events.PRESENCE_UPDATE, {"user_id": alice, "online": True, "side": "user"}
                ),
                origin="dead-worker.alice",
            ),
            "presence": [alice, True, "user"],
        },
    )
    await lobby.expect("presence:update", where=lambda f: f["data"]["user_id"] == alice)
    # bob: an entry the lobby learns about by asking
    await store.connect(bob, "dead-worker.bob", False)
    await lobby.send("presence:query", {"user_ids": [alice, bob]}, ref="q")
    state = await lobby.expect("presence:state")
    assert state["data"]["online"] == sorted([alice, bob])

    gone: dict[int, dict[str, Any]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2 + 2 * 1 + 1  # TTL, then at most two sweeps, and slack
    while len(gone) < 2:
        frame = await lobby.expect("presence:update", timeout=max(0.1, deadline - loop.time()))
        gone[frame["data"]["user_id"]] = frame["data"]
    assert gone == {
        alice: {"user_id": alice, "online": False, "side": "user"},
        bob: {"user_id": bob, "online": False, "side": "user"},
    }
    # told once: nothing more about them on the next sweeps
    for _ in range(6):  # 3 s, past two more sweeps: heartbeat replies only
        assert (await lobby.receive(timeout=3))["type"] == "heartbeat"
    beating.cancel()


# -- slow: 2,000 sockets on one uvicorn worker -------------------------------------------

USERS = 400
TABS = 5  # sockets per user: 2,000 in all
INTERVAL = 2
TTL = 6
HOLD_INTERVALS = 4


def bulk_sessions(users: list[Any]) -> dict[int, str]:
    """Session cookies for many users in one INSERT (a login per user takes too long)."""
    backend = django_settings.AUTHENTICATION_BACKENDS[0]
    rows, keys = [], {}
    expire = timezone.now() + timedelta(hours=1)
    for user in users:
        store = SessionStore()
        key = store._get_new_session_key()
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: backend,
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        keys[user.pk] = key
    Session.objects.bulk_create(rows)
    return keys


class Held:
    """One client socket: reads every frame, heartbeats every INTERVAL from the moment the
    handshake is done (so early frames queue behind the server's connect())."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.hello = asyncio.get_running_loop().create_future()
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()  # set on every frame
        self.beat = asyncio.ensure_future(self._beat())
        self.reader = asyncio.ensure_future(self._read())

    async def _beat(self) -> None:
        try:
            while True:
                await self.ws.send('{"type": "heartbeat", "data": {}}')
                await asyncio.sleep(INTERVAL)
        except Exception:
            return

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["type"] == "hello" and not self.hello.done():
                    self.hello.set_result(frame)
                elif frame["type"] != "heartbeat":
                    self.frames.append(frame)
                    self.arrived.set()
        except Exception:
            pass
        finally:
            if not self.hello.done():
                self.hello.set_exception(ConnectionError(f"closed {self.ws.close_code}"))

    async def until(self, condition: Any, timeout: float, what: str) -> None:
        """Wait for frames until ``condition()`` holds; fail after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                if not condition():
                    pytest.fail(f"{what() if callable(what) else what} within {timeout}s")

    def abort(self) -> None:
        """Gone without a close frame (a network drop, a killed client)."""
        self.beat.cancel()
        self.ws.transport.abort()


@pytest.fixture
def storm_worker(transactional_db: None) -> Any:
    from ..e2e.conftest import start_server, stop_server

    url = redis_url()
    import redis

    redis.Redis.from_url(url).flushdb()
    process, base = start_server(
        {
            "REDIS_URL": url,
            "SUPPORT_CHAT_HEARTBEAT_INTERVAL": str(INTERVAL),
            "SUPPORT_CHAT_PRESENCE_TTL": str(TTL),
        }
    )
    yield base.replace("http://", "ws://"), url
    stop_server(process)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_two_thousand_sockets_storm_in_and_drop_out(storm_worker):
    from websockets.asyncio.client import connect as ws_connect

    base, url = storm_worker
    started = time.monotonic()
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"storm{i}") for i in range(USERS)])
    staff = User.objects.create_user("lobby-staff", password="pw", is_staff=True)
    conversations = Conversation.objects.bulk_create([Conversation(customer=u) for u in users])
    cookies = bulk_sessions([*users, staff])
    name = django_settings.SESSION_COOKIE_NAME
    user_ids = sorted(u.pk for u in users)
    timings: dict[str, float] = {"setup": time.monotonic() - started}

    async def open_held(path: str, user_pk: int) -> Held:
        ws = await ws_connect(
            f"{base}{path}",
            origin="http://localhost",
            additional_headers={"Cookie": f"{name}={cookies[user_pk]}"},
            open_timeout=60,
            ping_interval=None,
            compression=None,
            max_queue=None,
        )
        return Held(ws)

    async def scenario() -> None:
        lobby = await open_held("/ws/chat/admin/", staff.pk)
        await lobby.hello

        # The storm: every socket at once (the handshakes queue up in the worker).
        t0 = time.monotonic()
        held = await asyncio.gather(
            *(
                open_held(f"/ws/chat/user/{conv.pk}/", conv.customer_id)
                for _tab in range(TABS)
                for conv in conversations
            )
        )
        await asyncio.gather(*(h.hello for h in held))
        timings["open 2000"] = time.monotonic() - t0

        def closes() -> dict[int, int]:
            codes: dict[int, int] = {}
            for h in [*held, lobby]:
                if h.ws.close_code is not None:
                    codes[h.ws.close_code] = codes.get(h.ws.close_code, 0) + 1
            return codes

        # Hold them, heartbeating; the watchdog sweeps HOLD_INTERVALS times meanwhile.
        await asyncio.sleep(HOLD_INTERVALS * INTERVAL)
        timings["hold"] = time.monotonic() - t0 - timings["open 2000"]
        assert closes() == {}, f"sockets closed while heartbeating: {closes()}"

        def offline_seen() -> set[int]:
            return {
                f["data"]["user_id"]
                for f in lobby.frames
                if f["type"] == "presence:update"
                and f["data"]["side"] == "user"
                and f["data"]["online"] is False
            }

        online_seen = {
            f["data"]["user_id"]
            for f in lobby.frames
            if f["type"] == "presence:update" and f["data"]["online"] is True
        }
        assert online_seen == set(user_ids)
        assert offline_seen() == set()

        # The drop: no close frames, like a network that vanished.
        t1 = time.monotonic()
        for h in held:
            h.abort()
        await lobby.until(
            lambda: offline_seen() == set(user_ids),
            TTL,
            lambda: f"offline events for {len(offline_seen())} of {USERS} users only",
        )
        timings["all offline"] = time.monotonic() - t1

        async def online_now() -> list[int]:
            ref = f"q{time.monotonic()}"
            await lobby.ws.send(
                json.dumps({"type": "presence:query", "data": {"user_ids": user_ids}, "ref": ref})
            )
            answers = lambda: [f for f in lobby.frames if f.get("ref") == ref]  # noqa: E731
            await lobby.until(lambda: answers(), 10, "no presence:state")
            return answers()[0]["data"]["online"]

        assert await online_now() == []
        # No refresh brings anyone back: ask again after two more sweeps.
        await asyncio.sleep(2 * INTERVAL)
        assert await online_now() == []
        assert offline_seen() == set(user_ids)
        assert lobby.ws.close_code is None
        lobby.beat.cancel()
        await lobby.ws.close()

    asyncio.run(scenario())

    import redis

    client = redis.Redis.from_url(url)
    now = time.time()
    live = [
        uid for uid in user_ids if client.zcount(f"support_chat:presence:user:{uid}", now, "+inf")
    ]
    assert live == []
    timings["total"] = time.monotonic() - started
    print("storm timings (s):", {k: round(v, 1) for k, v in timings.items()})
