"""The threads that run the sockets' database calls.

Channels runs every ``database_sync_to_async`` call of a worker on one shared thread, so a
worker stores one message at a time and every send waits for the database round trips of
the sends before it. ``WS_DATABASE_THREADS`` lanes run them side by side instead. A
conversation always uses the same lane (its id picks it), so the calls of one
conversation still run one at a time and in order, as on the shared thread; only different
conversations overlap. Each lane thread has its own database connection (from the pool),
and keeps it from one call to the next: handing it back to the pool and checking one out
again after every call (what Channels' ``database_sync_to_async`` does with
``CONN_MAX_AGE = 0``) cost about 0.5-0.9 ms of CPU per send. A connection that had an error
and no longer answers, or that is left inside a transaction, is closed after the call; one
unused for ``IDLE_RECHECK`` seconds is checked (``SELECT 1``) before the next call and
replaced if the server closed it meanwhile (a restart, an idle timeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.db import connections

from .conf import chat_settings

T = TypeVar("T")

_lock = threading.Lock()
_lanes: dict[int, ThreadPoolExecutor] = {}


def lane_count() -> int:
    """How many lanes to use: the setting, or 1 (the shared thread) on SQLite, whose
    writers queue for one lock anyway."""
    threads = chat_settings.WS_DATABASE_THREADS
    if threads is None:
        threads = 1 if connections["default"].vendor == "sqlite" else 4
    return max(1, int(threads))


def _lane(index: int) -> ThreadPoolExecutor:
    executor = _lanes.get(index)
    if executor is None:
        with _lock:
            executor = _lanes.get(index)
            if executor is None:
                executor = _lanes[index] = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"support-chat-db-{index}"
                )
    return executor


# Seconds a lane's connection may sit unused and still be used without a check.
IDLE_RECHECK = 30.0

_state = threading.local()  # per lane thread: when its connection was last used


def _tidy_connections() -> None:
    """After a lane call: close what must not be reused (Django's rules for a connection
    at the end of a request, without its age limit)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.in_atomic_block or conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()


def _in_lane(func: Callable[..., T], *args: Any) -> T:
    last = getattr(_state, "last_used", None)
    if last is not None and time.monotonic() - last > IDLE_RECHECK:
        # After a quiet spell the server may have closed it (a restart, an idle timeout):
        # one round trip to know, and a new connection from the pool if so.
        for conn in connections.all(initialized_only=True):
            if conn.connection is not None and not conn.is_usable():
                conn.close()
    try:
        return func(*args)
    finally:
        _state.last_used = time.monotonic()
        _tidy_connections()


def run(key: int | None, func: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run ``func(*args)`` on the lane of ``key`` (a conversation id), or on Channels'
    shared database thread when there is one lane or no key."""
    count = lane_count()
    if count == 1 or key is None:
        return database_sync_to_async(func)(*args)
    call = SyncToAsync(_in_lane, thread_sensitive=False, executor=_lane(key % count))
    return call(func, *args)


def close_connections() -> None:
    """Close the lanes' database connections (tests, before the test database goes)."""
    for executor in list(_lanes.values()):
        executor.submit(connections.close_all).result(timeout=10)
