"""The load generator: asyncio + websockets (or redis-py for the raw pub/sub floor).

Topology, identical for every target:

- N conversations. Each has a customer socket and a staff socket inside the conversation
  (the plugin's ``ws/chat/user/<id>/`` and ``ws/chat/admin/<id>/``).
- S staff lobby sockets (``ws/chat/admin/``) that receive every message of every conversation.

Messages are offered as one Poisson process of rate N x r (the superposition of N Poisson
processes of rate r), each to a random conversation from a random side. Every text carries a
marker ``~M<step>.<seq>.<send ns>.<side>~`` padded to a fixed size: the receiver reads the
send time from it and measures the delivery latency on the same clock (one process). A
message from the customer is expected on the conversation's staff socket and on every lobby;
one from staff on the customer socket and on every lobby. Anything not received by the end
of the drain window counts as lost; a second copy on the same socket as duplicated.

Bounded: connections ramp at a fixed rate with limited concurrency, each step has a fixed
send window, stops early when the oldest unacknowledged send is older than ``abort_after``
(the server has fallen behind), and drains for at most ``drain`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import connect as ws_connect

MARK = re.compile(r"~M(\d+)\.(\d+)\.(\d+)\.([cs])~")
TEXT_SIZE = 120  # characters of every message text, marker included
PAD = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 3
ORIGIN = "http://127.0.0.1"


def make_text(step: int, seq: int, side: str) -> str:
    mark = f"~M{step}.{seq}.{time.perf_counter_ns()}.{side}~ "
    return mark + PAD[: max(0, TEXT_SIZE - len(mark))]


@dataclass
class Sock:
    id: int
    role: str  # "c" customer, "s" staff in the conversation, "l" staff lobby
    conv: int  # index into the plan (-1 for lobbies)
    conn: Any = None
    reader: asyncio.Task[None] | None = None
    closed_code: int | None = None


@dataclass
class Target:
    """How to reach one system under test."""

    name: str
    kind: str  # "ws" or "redis"
    customer_url: Callable[[int], str] = lambda i: ""
    staff_url: Callable[[int], str] = lambda i: ""
    lobby_url: Callable[[int], str] = lambda j: ""
    redis_url: str = ""
    compression: str | None = "deflate"  # what browsers offer


RETRYABLE = ("overloaded", "unavailable", "throttled")  # error codes with retry_after


@dataclass
class StepState:
    step: int
    expected_per_msg: int
    retry: bool = False
    sent: dict[int, int] = field(default_factory=dict)  # seq -> send ns
    unacked: OrderedDict[int, int] = field(default_factory=OrderedDict)
    seen: set[tuple[int, int]] = field(default_factory=set)
    lat: dict[str, list[float]] = field(default_factory=lambda: {"c2s": [], "s2c": [], "s2l": []})
    delivered: int = 0
    duplicates: int = 0
    stale: int = 0
    errors: int = 0
    first_send: int = 0
    last_delivery: int = 0
    acked: int = 0
    # the slow-down protocol: seq -> (conversation, side, text, client_id) of every send,
    # attempts per seq, rejections by error code, retried seqs, retries still waiting
    frames: dict[int, tuple[int, str, str, str]] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    other_errors: dict[str, int] = field(default_factory=dict)
    pending_retries: int = 0
    lat_first: list[float] = field(default_factory=list)
    lat_retried: list[float] = field(default_factory=list)
    # seq -> perf_counter_ns of its latest attempt; latency of an accepted message from
    # the attempt the server accepted (a refused attempt is never delivered)
    attempt_ns: dict[int, int] = field(default_factory=dict)
    lat_accepted: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    acked_seqs: set[int] = field(default_factory=set)


def pct(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "n": len(values),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(a.max()),
    }


class LoadGen:
    def __init__(self, target: Target, conversations: int, lobbies: int, seed: int = 1) -> None:
        self.target = target
        self.n = conversations
        self.s = lobbies
        self.socks: list[Sock] = []
        self.customers: list[Sock | None] = [None] * conversations
        self.staff: list[Sock | None] = [None] * conversations
        self.lobbies: list[Sock] = []
        self.state: StepState | None = None
        self.heartbeat_interval = 10.0
        self.heartbeats_sent = 0
        self.beat_queue: deque[Sock] = deque()
        self.hb_task: asyncio.Task[None] | None = None
        self.rng = random.Random(seed)
        self.connect_errors: list[str] = []
        self.publisher: Any = None
        self.steps_run = 0
        self._retry_tasks: set[asyncio.Task[None]] = set()
        # client_ids of the last step's messages (for the "stored once" count in the DB)
        self.last_client_ids: list[str] = []
        self.last_acked_client_ids: list[str] = []

    # -- connections ---------------------------------------------------------------------------

    async def _open_ws(self, url: str) -> Any:
        conn = await ws_connect(
            url,
            origin=ORIGIN,  # type: ignore[arg-type]
            ping_interval=None,  # the protocol's own heartbeats keep sockets alive
            max_size=2**22,
            open_timeout=60,
            close_timeout=3,
            compression=self.target.compression,
        )
        hello = json.loads(await asyncio.wait_for(conn.recv(), 60))
        if hello.get("type") != "hello":
            raise RuntimeError(f"expected hello, got {hello.get('type')}")
        self.heartbeat_interval = float(hello["data"].get("heartbeat_interval", 10))
        return conn

    async def _open_redis(self, channel: str) -> Any:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.target.redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        # wait for the subscribe confirmation so the ramp is honest
        while True:
            msg = await pubsub.get_message(timeout=30)
            if msg and msg["type"] == "subscribe":
                return (client, pubsub)

    async def _open(self, sock: Sock) -> None:
        t = self.target
        try:
            if t.kind == "ws":
                url = {"c": t.customer_url, "s": t.staff_url, "l": t.lobby_url}[sock.role](
                    sock.conv if sock.role != "l" else sock.id
                )
                sock.conn = await self._open_ws(url)
                sock.reader = asyncio.ensure_future(self._read_ws(sock))
            else:
                channel = "lobby" if sock.role == "l" else f"conv.{sock.conv}"
                sock.conn = await self._open_redis(channel)
                sock.reader = asyncio.ensure_future(self._read_redis(sock))
        except Exception as exc:  # counted and reported; the socket is left out
            sock.conn = None
            self.connect_errors.append(f"{sock.role}{sock.conv}: {exc!r}"[:200])

    def plan_sockets(self, offset: int = 0) -> list[Sock]:
        socks = []
        for _ in range(self.s):
            socks.append(Sock(len(self.socks) + len(socks), "l", -1))
        for i in range(self.n):
            socks.append(Sock(len(self.socks) + len(socks), "c", offset + i))
            socks.append(Sock(len(self.socks) + len(socks), "s", offset + i))
        return socks

    async def ramp(
        self, socks: list[Sock], rate: float = 250.0, concurrency: int = 25
    ) -> dict[str, Any]:
        """Open ``socks`` at no more than ``rate`` per second, ``concurrency`` at a time.

        Each socket joins the heartbeat rotation as soon as it is open: a long ramp must not
        leave the first sockets silent past the server's heartbeat timeout."""
        started = time.perf_counter()
        sem = asyncio.Semaphore(concurrency)
        if self.target.kind == "ws" and self.hb_task is None:
            self.hb_task = asyncio.ensure_future(self._heartbeats())

        async def one(sock: Sock, at: float) -> None:
            async with sem:
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._open(sock)
            self._register(sock)

        await asyncio.gather(*(one(s, started + k / rate) for k, s in enumerate(socks)))
        if self.target.kind == "redis" and self.publisher is None:
            import redis.asyncio as aioredis

            pool = aioredis.BlockingConnectionPool.from_url(
                self.target.redis_url, max_connections=64, timeout=30
            )
            self.publisher = aioredis.Redis(connection_pool=pool)
        return {
            "opened": sum(1 for s in socks if s.conn is not None),
            "failed": sum(1 for s in socks if s.conn is None),
            "seconds": time.perf_counter() - started,
        }

    def _register(self, sock: Sock) -> None:
        self.socks.append(sock)
        if sock.conn is None:
            return
        if self.target.kind == "ws":
            self.beat_queue.append(sock)
        if sock.role == "l":
            self.lobbies.append(sock)
        elif sock.role == "c":
            if sock.conv < len(self.customers):
                self.customers[sock.conv] = sock
        elif sock.conv < len(self.staff):
            self.staff[sock.conv] = sock

    def open_count(self) -> int:
        return sum(1 for s in self.socks if s.conn is not None and s.closed_code is None)

    async def _heartbeats(self) -> None:
        """Every socket sends one heartbeat per interval, spread evenly over the interval.

        A FIFO queue ordered by last beat (a socket joins it when it opens): each socket is
        beaten about one interval after its previous beat, or after it opened. Paced by the
        clock, not by ticks, so a late tick catches up; one tick's sends go out concurrently."""
        frame = json.dumps({"type": "heartbeat", "data": {}})
        owed = 0.0
        last = time.perf_counter()

        async def beat(sock: Sock) -> None:
            try:
                await sock.conn.send(frame)
                self.heartbeats_sent += 1
            except Exception:
                pass

        try:
            while True:
                await asyncio.sleep(0.05)
                now = time.perf_counter()
                queue = self.beat_queue
                owed += len(queue) * (now - last) / self.heartbeat_interval
                last = now
                batch = []
                while owed >= 1 and queue:
                    sock = queue.popleft()
                    owed -= 1
                    if sock.closed_code is None:
                        batch.append(sock)
                        queue.append(sock)
                if not queue:
                    owed = 0.0
                if batch:
                    await asyncio.gather(*(beat(sock) for sock in batch))
        except asyncio.CancelledError:
            return

    # -- receiving -----------------------------------------------------------------------------

    def _on_frame(self, sock: Sock, raw: str) -> None:
        head = raw[:48]
        st = self.state
        if '"message:new"' in head:
            now = time.perf_counter_ns()
            m = MARK.search(raw)
            if m is None or st is None:
                return
            step, seq, sent_ns, side = int(m[1]), int(m[2]), int(m[3]), m[4]
            if step != st.step:
                st.stale += 1
                return
            if side == sock.role:
                return  # a socket's own message echoed through the conversation group
            key = (seq, sock.id)
            if key in st.seen:
                st.duplicates += 1
                return
            st.seen.add(key)
            st.delivered += 1
            st.last_delivery = now
            lat_ms = (now - sent_ns) / 1e6
            (st.lat_retried if st.attempts.get(seq, 1) > 1 else st.lat_first).append(lat_ms)
            st.lat_accepted.append((now - st.attempt_ns.get(seq, sent_ns)) / 1e6)
            if side == "c":
                st.lat["c2s"].append(lat_ms)
            elif sock.role == "c":
                st.lat["s2c"].append(lat_ms)
            else:
                st.lat["s2l"].append(lat_ms)
        elif '"message:sent"' in head:
            m = MARK.search(raw)
            if (
                m is not None
                and st is not None
                and int(m[1]) == st.step
                and (first := st.unacked.pop(int(m[2]), None)) is not None
            ):
                st.acked += 1
                st.acked_seqs.add(int(m[2]))
                st.ack_ms.append((time.perf_counter_ns() - first) / 1e6)
        elif '"error"' in head and st is not None:
            self._on_error(st, raw)

    def _on_error(self, st: StepState, raw: str) -> None:
        """An error frame: a slow-down answer (``overloaded``, ``unavailable``, ``throttled``
        with ``retry_after``) is retried with the same ``client_id`` when the step retries;
        anything else counts as an error."""
        try:
            frame = json.loads(raw)
        except ValueError:
            st.errors += 1
            return
        data = frame.get("data") or {}
        code = str(data.get("code"))
        ref = frame.get("ref")
        if code in RETRYABLE and isinstance(ref, int) and ref in st.frames:
            st.rejected[code] = st.rejected.get(code, 0) + 1
            if st.retry:
                delay = float(data.get("retry_after") or 1.0)
                st.pending_retries += 1
                asyncio.get_running_loop().call_later(
                    delay * (1 + 0.2 * self.rng.random()), self._resend, st, ref
                )
            return
        st.other_errors[code] = st.other_errors.get(code, 0) + 1
        st.errors += 1

    def _resend(self, st: StepState, seq: int) -> None:
        st.pending_retries -= 1
        if self.state is not st:
            return  # the step is over
        st.attempts[seq] = st.attempts.get(seq, 1) + 1
        st.attempt_ns[seq] = time.perf_counter_ns()
        conv, side, text, client_id = st.frames[seq]
        task = asyncio.ensure_future(self._send_frame(st, conv, side, text, client_id, seq))
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    async def _read_ws(self, sock: Sock) -> None:
        try:
            async for raw in sock.conn:
                self._on_frame(sock, raw if isinstance(raw, str) else raw.decode())
        except Exception:
            pass
        sock.closed_code = sock.conn.close_code if sock.conn.close_code is not None else -1

    async def _read_redis(self, sock: Sock) -> None:
        _client, pubsub = sock.conn
        try:
            async for msg in pubsub.listen():
                if msg["type"] == "message":
                    self._on_frame(sock, msg["data"].decode())
        except Exception:
            pass
        sock.closed_code = -1

    # -- sending ---------------------------------------------------------------------------------

    async def _send(self, st: StepState, conv: int, side: str, seq: int) -> None:
        text = make_text(st.step, seq, side)
        sent_ns = int(MARK.search(text)[3])  # type: ignore[index]
        st.sent[seq] = sent_ns
        st.unacked[seq] = sent_ns
        client_id = str(uuid.uuid4())
        st.frames[seq] = (conv, side, text, client_id)
        st.attempts[seq] = 1
        await self._send_frame(st, conv, side, text, client_id, seq)

    async def _send_frame(
        self, st: StepState, conv: int, side: str, text: str, client_id: str, seq: int
    ) -> None:
        try:
            if self.target.kind == "ws":
                sock = self.customers[conv] if side == "c" else self.staff[conv]
                frame = {
                    "type": "message:send",
                    "data": {"text": text, "client_id": client_id},
                    "ref": seq,
                }
                await sock.conn.send(json.dumps(frame))  # type: ignore[union-attr]
            else:
                event = json.dumps(
                    {
                        "type": "message:new",
                        "data": {"conversation_id": conv, "message": {"text": text}},
                    }
                )
                async with self.publisher.pipeline(transaction=False) as pipe:
                    pipe.publish(f"conv.{conv}", event)
                    pipe.publish("lobby", event)
                    await pipe.execute()
                if st.unacked.pop(seq, None) is not None:
                    st.acked += 1
        except Exception:
            st.errors += 1

    async def step(
        self,
        rate_per_conv: float,
        duration: float,
        drain: float,
        probe: Callable[[], dict[str, float]] | None = None,
        abort_after: float | None = 5.0,
        sides: str = "cs",
        total_rate: float | None = None,
        retry: bool = False,
        window: float | None = None,
    ) -> dict[str, Any]:
        """Offer ``rate_per_conv`` messages/s to every complete conversation (or
        ``total_rate`` messages/s in all) for ``duration`` s, each from a random side of
        ``sides`` ("c" customer, "s" staff). With ``retry``, slow-down error frames are
        retried after their ``retry_after`` with the same ``client_id``. With ``window``,
        the counters span a whole multiple of ``window`` seconds (see Config.cpu_window)."""
        self.steps_run += 1
        convs = [
            i
            for i in range(self.n)
            if self.customers[i] is not None
            and self.staff[i] is not None
            and self.customers[i].closed_code is None  # type: ignore[union-attr]
            and self.staff[i].closed_code is None  # type: ignore[union-attr]
        ]
        lobbies_open = sum(1 for s in self.lobbies if s.closed_code is None)
        st = StepState(step=self.steps_run, expected_per_msg=1 + lobbies_open, retry=retry)
        self.state = st
        if total_rate is None:
            total_rate = rate_per_conv * len(convs)
        elif convs:
            rate_per_conv = total_rate / len(convs)
        hb0 = self.heartbeats_sent
        before = probe() if probe else {}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        st.first_send = time.perf_counter_ns()
        next_t = t0
        seq = 0
        aborted = False
        tasks: set[asyncio.Task[None]] = set()
        burst = 0
        while convs and total_rate > 0:
            next_t += self.rng.expovariate(total_rate)
            if next_t - t0 > duration:
                break
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                burst = 0
            else:
                burst += 1
                if burst % 20 == 0:
                    await asyncio.sleep(0)
            seq += 1
            task = asyncio.ensure_future(
                self._send(st, self.rng.choice(convs), self.rng.choice(sides), seq)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if abort_after is not None and seq % 50 == 0 and st.unacked:
                oldest = next(iter(st.unacked.values()))
                if (time.perf_counter_ns() - oldest) / 1e9 > abort_after:
                    aborted = True
                    break
        send_seconds = loop.time() - t0
        if tasks:
            await asyncio.wait(tasks, timeout=drain)
        sent = len(st.sent)
        expected = sent * st.expected_per_msg
        deadline = loop.time() + drain
        while loop.time() < deadline and (
            st.delivered < expected or st.unacked or st.pending_retries or self._retry_tasks
        ):
            await asyncio.sleep(0.05)  # polling: a delivery is a counter, not an event
            expected = len(st.sent) * st.expected_per_msg
        if window:
            spent = loop.time() - t0
            await asyncio.sleep(window * math.ceil(spent / window) - spent)
        end_ns = time.perf_counter_ns()
        after = probe() if probe else {}
        per_msg: dict[int, int] = {}
        for seq_, _sock in st.seen:
            per_msg[seq_] = per_msg.get(seq_, 0) + 1
        complete = sum(1 for v in per_msg.values() if v >= st.expected_per_msg)
        delivered_msgs = complete
        span = max(1e-9, ((st.last_delivery or end_ns) - st.first_send) / 1e9)
        all_lat = st.lat["c2s"] + st.lat["s2c"] + st.lat["s2l"]
        result: dict[str, Any] = {
            "target": self.target.name,
            "conversations": len(convs),
            "lobbies": lobbies_open,
            "rate_per_conv": rate_per_conv,
            "offered_rate": total_rate,
            "send_seconds": send_seconds,
            "achieved_rate": sent / send_seconds if send_seconds > 0 else 0.0,
            "aborted": aborted,
            "sent": sent,
            "acked": st.acked,
            "expected_deliveries": expected,
            "deliveries": st.delivered,
            "lost_deliveries": max(0, expected - st.delivered),
            "lost_messages": sent - complete,
            "duplicates": st.duplicates,
            "stale": st.stale,
            "errors": st.errors,
            "other_errors": dict(st.other_errors),
            "rejected": dict(st.rejected),
            "retried_messages": sum(1 for a in st.attempts.values() if a > 1),
            "attempts": sum(st.attempts.values()),
            "unacked_at_end": len(st.unacked),
            "latency_first_try": pct(st.lat_first),
            "latency_retried": pct(st.lat_retried),
            "latency_accepted_attempt": pct(st.lat_accepted),
            "ack_ms": pct(st.ack_ms),
            "sides": sides,
            "delivered_msgs_per_s": delivered_msgs / span,
            "deliveries_per_s": st.delivered / span,
            "latency": {
                "customer_to_staff": pct(st.lat["c2s"]),
                "staff_to_customer": pct(st.lat["s2c"]),
                "staff_to_lobby": pct(st.lat["s2l"]),
                "all": pct(all_lat),
            },
            "heartbeats": self.heartbeats_sent - hb0,
            "sockets_closed": sum(
                1 for s in self.socks if s.conn is not None and s.closed_code is not None
            ),
            "wall_seconds": (end_ns - st.first_send) / 1e9,
            "counters": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "gauges": {k: after[k] for k in after if k.endswith("_rss")},
            "latencies_sample": sorted(all_lat)[:: max(1, len(all_lat) // 200)],
        }
        self.last_client_ids = [f[3] for f in st.frames.values()]
        self.last_acked_client_ids = [st.frames[q][3] for q in st.acked_seqs if q in st.frames]
        self.state = None
        return result

    async def each_once(self, rate: float = 200.0, wait: float = 10.0) -> int:
        """One message from each side of every open conversation (not measured): the
        server's per-conversation state (e.g. a pending email notification) then exists
        for every conversation before the measured steps, in every run alike."""
        self.steps_run += 1
        # retrying: a fresh worker's first burst may be refused while it warms up
        st = StepState(step=self.steps_run, expected_per_msg=0, retry=True)
        self.state = st
        seq = 0
        for i in range(self.n):
            for side, socks in (("c", self.customers), ("s", self.staff)):
                if socks[i] is None or socks[i].closed_code is not None:  # type: ignore[union-attr]
                    continue
                seq += 1
                await self._send(st, i, side, seq)
                await asyncio.sleep(1.0 / rate)
        deadline = time.perf_counter() + wait
        while st.unacked and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self.state = None
        return seq

    async def measure_idle(
        self, seconds: float, probe: Callable[[], dict[str, float]]
    ) -> dict[str, Any]:
        hb0 = self.heartbeats_sent
        before = probe()
        await asyncio.sleep(seconds)
        after = probe()
        return {
            "seconds": seconds,
            "heartbeats": self.heartbeats_sent - hb0,
            "counters": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "gauges": {k: after[k] for k in after if k.endswith("_rss")},
        }

    async def close(self) -> None:
        if self.hb_task is not None:
            self.hb_task.cancel()
        open_socks = [s for s in self.socks if s.conn is not None]

        async def shut(sock: Sock) -> None:
            try:
                if self.target.kind == "ws":
                    await sock.conn.close()
                else:
                    client, pubsub = sock.conn
                    await pubsub.aclose()
                    await client.aclose()
            except Exception:
                pass

        sem = asyncio.Semaphore(200)

        async def limited(sock: Sock) -> None:
            async with sem:
                await shut(sock)

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(limited(s) for s in open_socks)), 30)
        for sock in open_socks:
            if sock.reader is not None:
                sock.reader.cancel()
        if self.publisher is not None:
            await self.publisher.aclose()
