"""Concurrent REST clients: asyncio streams + h11 (uvicorn's own HTTP/1.1 library, so no
extra dependency), one keep-alive connection per client.

Each client is a distinct signed-in user (its own session cookie, a CSRF cookie and the
matching ``X-CSRFToken`` header) in its own conversation, and runs a closed loop for the
step's duration: one request, wait for the answer, the next. A POST that is answered 503 or
429 is sent again after its ``Retry-After`` (plus up to 20 % jitter) with the same
``client_id`` until it is stored (2xx) or the drain window ends; its end-to-end time runs
from the first attempt. Every answer is counted by status class.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import h11
from loadgen import pct

TEXT = (
    "Hello, my order #{n} has not arrived yet. Tracking: https://example.com/track/{n} "
    "Could you check it? Thanks!"
)


@dataclass
class RestClient:
    """One user: where it GETs and POSTs, and its cookies."""

    get_path: str
    post_path: str
    cookie: str = ""
    csrf: str = ""


class Conn:
    """One keep-alive HTTP/1.1 connection (reopened when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.h11: h11.Connection | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.h11 = h11.Connection(h11.CLIENT)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.writer = self.reader = self.h11 = None

    async def request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            if self.h11 is None or self.h11.our_state is not h11.IDLE:
                await self.close()
                await self._open()
            try:
                return await self._request(method, path, headers, body)
            except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.h11 is not None and self.writer is not None and self.reader is not None
        conn = self.h11
        all_headers = [("Host", "127.0.0.1"), *headers, ("Content-Length", str(len(body)))]
        data = conn.send(h11.Request(method=method, target=path, headers=all_headers))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status, resp_headers, chunks = 0, {}, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                raw = await self.reader.read(65536)
                conn.receive_data(raw)
                if not raw and conn.their_state is not h11.DONE:
                    raise ConnectionError("server closed the connection")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                resp_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("connection closed")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.close()
        return status, resp_headers, b"".join(chunks)


def status_class(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (429, 503):
        return str(status)
    if status >= 500:
        return "other 5xx"
    return "other"


@dataclass
class RestStepState:
    statuses: dict[str, int] = field(default_factory=dict)
    codes: dict[int, int] = field(default_factory=dict)
    request_ms: list[float] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)
    message_ms: list[float] = field(default_factory=list)  # POST: first attempt -> 2xx
    retried_messages: int = 0
    gave_up: int = 0
    retry_after_missing: int = 0
    errors: list[str] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)
    bodies_5xx: list[str] = field(default_factory=list)


async def rest_step(
    port: int,
    clients: list[RestClient],
    method: str,
    duration: float,
    drain: float,
    probe: Any = None,
    seed: int = 1,
    per_client: int | None = None,
) -> dict[str, Any]:
    """``len(clients)`` concurrent closed-loop clients, each GETting its ``get_path`` or
    POSTing messages to its ``post_path`` for ``duration`` s; POSTs rejected with 503/429
    are retried (same client_id) until stored or ``duration + drain`` has passed. With
    ``per_client``, each client sends exactly that many requests instead."""
    rng = random.Random(seed)
    st = RestStepState()
    loop = asyncio.get_running_loop()
    conns = [Conn(port) for _ in clients]
    # connect first, so the window measures requests, not the connect storm
    await asyncio.gather(*(c._open() for c in conns), return_exceptions=True)
    before = probe() if probe else {}
    t0 = loop.time()
    stop_new = t0 + duration
    hard_stop = stop_new + drain

    async def one(k: int, client: RestClient, conn: Conn) -> None:
        headers = [("Cookie", client.cookie), ("Accept", "application/json")]
        if method == "POST":
            headers += [
                ("X-CSRFToken", client.csrf),
                ("Content-Type", "application/json"),
                ("Origin", "http://127.0.0.1"),
            ]
        n = 0
        while (n < per_client) if per_client is not None else (loop.time() < stop_new):
            n += 1
            body = b""
            client_id = str(uuid.uuid4())
            if method == "POST":
                body = json.dumps(
                    {"text": TEXT.format(n=f"{k}-{n}"), "client_id": client_id}
                ).encode()
                st.client_ids.append(client_id)
            first = time.perf_counter()
            attempts = 0
            while True:
                attempts += 1
                t = time.perf_counter()
                try:
                    status, rh, payload = await asyncio.wait_for(
                        conn.request(
                            method,
                            client.post_path if method == "POST" else client.get_path,
                            headers,
                            body,
                        ),
                        # a request in flight is waited for (its CPU is in the window):
                        # only retries stop at the drain's end
                        timeout=30.0,
                    )
                except Exception as exc:  # counted; the connection is reopened next time
                    st.errors.append(repr(exc)[:160])
                    await conn.close()
                    status, rh, payload = -1, {}, b""
                ms = (time.perf_counter() - t) * 1000
                if status > 0:
                    cls = status_class(status)
                    st.statuses[cls] = st.statuses.get(cls, 0) + 1
                    st.codes[status] = st.codes.get(status, 0) + 1
                    st.request_ms.append(ms)
                    if cls == "2xx":
                        st.ok_ms.append(ms)
                    elif cls == "other 5xx" and len(st.bodies_5xx) < 3:
                        st.bodies_5xx.append(payload[:300].decode(errors="replace"))
                if 200 <= status < 300:
                    if method == "POST":
                        st.message_ms.append((time.perf_counter() - first) * 1000)
                        if attempts > 1:
                            st.retried_messages += 1
                    break
                if method != "POST" or status not in (429, 503):
                    break  # GET: next request; POST other failure: counted, not retried
                retry_after = rh.get("retry-after")
                if retry_after is None:
                    st.retry_after_missing += 1
                try:
                    wait = float(retry_after or 1.0)
                except ValueError:
                    wait = 1.0
                wait *= 1 + 0.2 * rng.random()
                if loop.time() + wait > hard_stop:
                    st.gave_up += 1
                    break
                await asyncio.sleep(wait)

    await asyncio.gather(
        *(one(k, c, conn) for k, (c, conn) in enumerate(zip(clients, conns, strict=False)))
    )
    wall = loop.time() - t0
    after = probe() if probe else {}
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    answered = sum(st.statuses.values())
    ok = st.statuses.get("2xx", 0)
    return {
        "method": method,
        "clients": len(clients),
        "duration": duration,
        "wall_seconds": wall,
        "statuses": st.statuses,
        "codes": {str(k): v for k, v in sorted(st.codes.items())},
        "answered": answered,
        "ok": ok,
        "req_per_s": answered / wall if wall else 0.0,
        "ok_per_s": ok / wall if wall else 0.0,
        "latency": pct(st.request_ms),
        "latency_ok": pct(st.ok_ms),
        "message_latency": pct(st.message_ms),
        "retried_messages": st.retried_messages,
        "gave_up": st.gave_up,
        "retry_after_missing": st.retry_after_missing,
        "client_errors": len(st.errors),
        "client_errors_first": st.errors[:3],
        "bodies_5xx": st.bodies_5xx,
        "messages": len(st.client_ids),
        "counters": {k: after.get(k, 0) - before.get(k, 0) for k in after},
        "_client_ids": st.client_ids,
    }
