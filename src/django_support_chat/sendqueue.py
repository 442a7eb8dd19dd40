"""Pushback, not backlog (docs/protocol.md, "Slowing down"): a bounded count, per worker
process, of sends accepted but not yet stored.

A WebSocket ``message:send`` frame, a REST message POST and an inbox reply each hold one
slot from the moment they are accepted until their database call has finished. When
``SEND_QUEUE_LIMIT`` slots are taken, a new send is refused at once (``overloaded``, HTTP
503 with ``Retry-After``) instead of waiting behind the others; the client sends it again
with the same ``client_id`` after ``SEND_RETRY_AFTER`` seconds, and the idempotent send
stores it once. That resend is owed a place: it is taken even while the queue is full (up
to ``OWED_HEADROOM`` times the limit), so the clients answered a moment ago, sending again
at once, cannot keep a refused one out.

A send is also refused while the worker runs late by more than ``SEND_MAX_LAG`` seconds:
its event loop (``LoopLag``), or the delivery of the events it published to its own
sockets (``DeliveryLag``). The database queue is then short, but every frame and every
delivery waits, so accepting more only makes all of them later. Only while sends come
fast (``LAG_DEMAND``): a worker that is late while it is offered a few sends a second is
late for another reason (a busy machine, a pause), and refusing those would not make it
catch up.

REST requests run on many threads and WebSocket sends on the event loop, so the count is
guarded by a lock. Refusals are counted (``support_chat_sends_rejected_total``) and logged
(``send.overloaded``) at most once per ``LOG_WINDOW`` seconds per interface, with how many
refusals the line stands for; so are requests and frames answered ``unavailable`` because
the database gave no connection (``support_chat_db_unavailable_total``, ``db.unavailable``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext

from . import metrics
from .conf import chat_settings

logger = logging.getLogger("django_support_chat.sendqueue")

LOG_WINDOW = 10.0

OVERLOADED = "overloaded"
UNAVAILABLE = "unavailable"


class Overloaded(Exception):
    """Every slot is taken: answer the send at once (``overloaded``), store nothing.
    ``retry_after``: ``SEND_RETRY_AFTER`` times the gate's current ``backoff()``."""

    code = OVERLOADED

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__(gettext("The server is busy; try again shortly."))
        self.retry_after = round(retry_after() * factor, 2)


def retry_after() -> float:
    """Seconds a refused client should wait (``SEND_RETRY_AFTER``)."""
    return float(chat_settings.SEND_RETRY_AFTER)


def retry_after_header(seconds: float | None = None) -> str:
    """The ``Retry-After`` header: whole seconds, at least 1."""
    return str(max(1, math.ceil(retry_after() if seconds is None else seconds)))


class Slot:
    """One pending send. ``release()`` may be called more than once (the database thread
    releases when the call ends; the caller again when it sees the result)."""

    __slots__ = ("_gate", "_released")

    def __init__(self, gate: SendGate) -> None:
        self._gate, self._released = gate, False

    def release(self) -> None:
        with self._gate._lock:
            if self._released:
                return
            self._released = True
            self._gate._pending -= 1

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def retry_key(client_id: Any) -> str | None:
    """The key a send is remembered by when refused: its ``client_id`` as a canonical
    UUID, or None (no UUID, no place owed)."""
    if isinstance(client_id, str):
        try:
            return str(uuid.UUID(client_id))
        except ValueError:
            return None
    return None


class SendGate:
    """The per-process count of pending sends, of the sends it took and refused lately
    (``backoff()``), and of the sends it owes a place (``acquire(client_id=...)``)."""

    # Refused / taken are counted over the current and the previous second.
    BACKOFF_BUCKET = 1.0
    MAX_BACKOFF = 10.0
    # A send refused is owed a place for this many times the longest retry_after; at most
    # OWED_MAX of them are remembered (the oldest forgotten first), and owed sends may
    # take up to OWED_HEADROOM times SEND_QUEUE_LIMIT slots.
    OWED_FOR = 3.0
    OWED_MAX = 10_000
    OWED_HEADROOM = 2
    # A late worker refuses sends only once it was offered this many (taken and refused)
    # over the last one to two seconds: 10-20 a second, a tenth of what one worker stores.
    LAG_DEMAND = 20

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._pending = 0
        self._owed: OrderedDict[str, float] = OrderedDict()
        self._bucket_end = -math.inf
        # [taken, refused] in the current and the previous bucket
        self._counts = [0, 0]
        self._previous = [0, 0]

    def _count(self, refused: bool) -> None:
        now = self.clock()
        with self._lock:
            if now >= self._bucket_end:
                recent = now < self._bucket_end + self.BACKOFF_BUCKET
                self._previous = self._counts if recent else [0, 0]
                self._counts = [0, 0]
                self._bucket_end = now + self.BACKOFF_BUCKET
            self._counts[refused] += 1

    def backoff(self) -> float:
        """How many times ``SEND_RETRY_AFTER`` a refused client should wait: the sends
        offered per send taken ((taken + refused) / taken) over the last one to two
        seconds, from 1 to ``MAX_BACKOFF``. Clients that all came back after the same
        second would be refused together again; asked to wait in proportion to the
        demand, they come back about as fast as the worker takes them. Each refusal costs
        a frame or a whole request (a REST 503 costs about half a stored POST), so the
        wait grows from the first refusal on rather than once refusals outnumber sends."""
        taken, refused = self._recent()
        return min(self.MAX_BACKOFF, 1.0 + refused / max(taken, 1))

    def _recent(self) -> tuple[int, int]:
        """(taken, refused) over the last one to two seconds."""
        with self._lock:
            if self.clock() >= self._bucket_end + self.BACKOFF_BUCKET:
                return 0, 0
            return (
                self._counts[0] + self._previous[0],
                self._counts[1] + self._previous[1],
            )

    def lagging(self) -> dict[str, float]:
        """``lag`` and ``delivery_lag`` when the worker runs later than ``SEND_MAX_LAG``
        while sends come fast (``LAG_DEMAND``); else empty."""
        max_lag = chat_settings.SEND_MAX_LAG
        if max_lag is None:
            return {}
        lag, late = loop_lag.current(), delivery_lag.current()
        if (lag > max_lag or late > max_lag) and sum(self._recent()) >= self.LAG_DEMAND:
            return {"lag": round(lag, 3), "delivery_lag": round(late, 3)}
        return {}

    @property
    def pending(self) -> int:
        return self._pending

    def try_acquire(self, limit: int | None = None) -> Slot | None:
        """A slot, or None when ``limit`` (default ``SEND_QUEUE_LIMIT``; None: unbounded)
        slots are already taken. Never waits."""
        if limit is None:
            limit = chat_settings.SEND_QUEUE_LIMIT
        with self._lock:
            if limit is not None and self._pending >= limit:
                return None
            self._pending += 1
        return Slot(self)

    def acquire(self, interface: str, client_id: Callable[[], Any] | None = None) -> Slot:
        """A slot, or :class:`Overloaded` (counted and logged for ``interface``) when every
        slot is taken or the worker runs late (``SEND_MAX_LAG``).

        ``client_id``: returns the send's ``client_id``; called only when the send would
        be refused. A refused send is owed a place: sent again with the same client_id
        while the queue is still full, it is taken, up to ``OWED_HEADROOM`` times the
        limit. Without it, the clients that were just answered send again at once and
        take the freed slots, while the refused ones, back after their ``retry_after``,
        find the queue full again and again. A worker running late (``lagging()``)
        refuses every send."""
        fields = self.lagging()
        slot = None if fields else self.try_acquire()
        if slot is None:
            key = retry_key(client_id()) if client_id is not None else None
            limit = chat_settings.SEND_QUEUE_LIMIT
            if not fields and key is not None and limit is not None and self._repay(key):
                slot = self.try_acquire(limit * self.OWED_HEADROOM)
            if slot is None:
                raise self._refuse(interface, key, **fields)
        self._count(refused=False)
        return slot

    def _repay(self, key: str) -> bool:
        """Whether ``key`` was refused lately (and forget it: a place is owed once)."""
        with self._lock:
            due = self._owed.pop(key, None)
        return due is not None and self.clock() < due

    def _refuse(self, interface: str, key: str | None, **fields: Any) -> Overloaded:
        factor = self.backoff()
        self._count(refused=True)
        if key is not None:
            due = self.clock() + self.OWED_FOR * self.MAX_BACKOFF * retry_after()
            with self._lock:
                self._owed[key] = due
                self._owed.move_to_end(key)
                while len(self._owed) > self.OWED_MAX:
                    self._owed.popitem(last=False)
        note_rejected(interface, OVERLOADED, pending=self._pending, backoff=factor, **fields)
        return Overloaded(factor)


class LoopLag:
    """How late the worker's event loop runs: a task sleeps ``INTERVAL`` again and again
    and notes how much later than asked it woke up. ``current()`` is the smaller lag of
    the last two wake-ups, so one pause (a garbage collection, the process descheduled on
    a busy machine) refuses nothing, while a loop that stays behind does. Safe to read
    from any thread (REST requests read it)."""

    INTERVAL = 0.05

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None
        self.last = self.previous = 0.0
        self.samples = 0

    def start(self) -> None:
        """Watch the running loop (from a coroutine or a callback on it); idempotent. A
        monitor that ended (cancelled with the tasks of its loop) is started again, so
        stale figures never outlive it."""
        loop = asyncio.get_running_loop()
        if self.loop is loop and self.task is not None and not self.task.done():
            return
        self.loop, self.last, self.previous = loop, 0.0, 0.0
        self.task = task = loop.create_task(self._run(loop))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        while self.loop is loop:
            due = time.monotonic() + self.INTERVAL
            await asyncio.sleep(self.INTERVAL)
            self.previous, self.last = self.last, max(0.0, time.monotonic() - due)
            self.samples += 1

    def current(self) -> float:
        loop, task = self.loop, self.task
        if loop is None or loop.is_closed() or task is None or task.done():
            return 0.0
        return min(self.last, self.previous)


class DeliveryLag:
    """How late this worker's sockets send out the events this worker published: the
    longest wait from publishing to the socket seen in the current ``WINDOW`` and the one
    before it. The event loop can keep up with its timers while the events pile up in
    the sockets' queues (a staff lobby socket gets every message of the site), and that
    wait is what a recipient sees. Only this process's own events count: wall clocks of
    other hosts may disagree. No delivery for two windows reads as no lag."""

    WINDOW = 0.25

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.window_end = -math.inf
        self.peak = self.previous = 0.0

    def observe(self, seconds: float) -> None:
        now = self.clock()
        if now >= self.window_end:
            recent = now < self.window_end + self.WINDOW
            self.previous = self.peak if recent else 0.0
            self.peak, self.window_end = max(0.0, seconds), now + self.WINDOW
        elif seconds > self.peak:
            self.peak = seconds

    def current(self) -> float:
        now = self.clock()
        if now >= self.window_end + self.WINDOW:
            return 0.0
        if now >= self.window_end:
            return self.peak
        return max(self.peak, self.previous)


loop_lag = LoopLag()
delivery_lag = DeliveryLag()
_tasks: set[asyncio.Task[None]] = set()


gate = SendGate()

# (interface, reason) -> [time of the last line, refusals since]
_log_state: dict[tuple[str, str], list[float]] = {}
_log_lock = threading.Lock()


def note_rejected(interface: str, reason: str, **fields: Any) -> None:
    """Count one refusal and log it at most once per ``LOG_WINDOW`` seconds for this
    ``interface`` (``http``, ``ws``, ``inbox``) and ``reason``, with the number of refusals
    the line stands for. ``overloaded``: every slot was taken (``send.overloaded``,
    ``support_chat_sends_rejected_total``); ``unavailable``: the database gave no connection
    (``db.unavailable``, ``support_chat_db_unavailable_total``)."""
    if reason == OVERLOADED:
        metrics.SENDS_REJECTED.labels(interface=interface).inc()
        event = "send.overloaded"
        fields = {**fields, "limit": chat_settings.SEND_QUEUE_LIMIT}
    else:
        metrics.DB_UNAVAILABLE.labels(interface=interface).inc()
        event = "db.unavailable"
    now = time.monotonic()
    with _log_lock:
        state = _log_state.setdefault((interface, reason), [-math.inf, 0])
        state[1] += 1
        if now - state[0] < LOG_WINDOW:
            return
        count, state[0], state[1] = int(state[1]), now, 0
    details = "".join(f" {key}={value}" for key, value in fields.items())
    logger.warning(
        "%s interface=%s refused=%s%s",
        event,
        interface,
        count,
        details,
        extra={"event": event, "interface": interface, "refused": count, **fields},
    )
