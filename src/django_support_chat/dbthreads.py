"""The threads that run the sockets' database calls.

Channels runs every ``database_sync_to_async`` call of a worker on one shared thread, so a
worker stores one message at a time and every send waits for the database round trips of
the sends before it. ``WS_DATABASE_THREADS`` lanes run them side by side instead. A
conversation always uses the same lane (its id picks it), so the calls of one
conversation still run one at a time and in order, as on the shared thread; only different
conversations overlap. Each lane thread has its own database connection (from the pool).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

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


def run(key: int | None, func: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Run ``func(*args)`` on the lane of ``key`` (a conversation id), or on Channels'
    shared database thread when there is one lane or no key."""
    count = lane_count()
    if count == 1 or key is None:
        return database_sync_to_async(func)(*args)
    call = database_sync_to_async(func, thread_sensitive=False, executor=_lane(key % count))
    return call(*args)


def close_connections() -> None:
    """Close the lanes' database connections (tests, before the test database goes)."""
    for executor in list(_lanes.values()):
        executor.submit(connections.close_all).result(timeout=10)
