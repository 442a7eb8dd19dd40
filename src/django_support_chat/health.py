"""Readiness checks: can this worker serve the chat right now?

Three checks, each bounded by ``HEALTH_TIMEOUT`` seconds and each returning a
``CheckResult`` (never raising):

- ``check_database``: ``SELECT 1`` on a database alias (``default``), in a small thread
  pool of its own so a hung database cannot take the request threads with it;
- ``check_channel_layer``: one message sent to a fresh channel of the channel layer and
  received back (what every live update needs);
- ``check_presence``: the presence store answers a ``ping()`` (a Redis ``PING``; the
  in-process store always answers).

``run_checks`` runs the three at once, so a readiness answer takes at most about one
timeout. Error messages name the failure (``"timed out after 2s"``, ``"ConnectionError"``)
and nothing else: no hosts, passwords or tracebacks, which go to the
``django_support_chat.health`` logger instead. The HTTP side is ``django_support_chat.ops``
(plain endpoints and django-health-check checks); docs/operations.md has the details.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.layers import DEFAULT_CHANNEL_LAYER, get_channel_layer
from django.db import connections

from .conf import chat_settings
from .presence import get_presence_store

logger = logging.getLogger("django_support_chat.health")

MESSAGE_TYPE = "support_chat.health"

# Database checks run here, not in the request threads: a query stuck on an unreachable
# server keeps its thread until the driver gives up, and at most two threads are held that
# way (later checks queue behind them and report the timeout).
_db_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="support-chat-health")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    ok: bool
    ms: float  # time taken, milliseconds
    error: str | None = None  # a short reason without secrets; None when ok

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "ms": self.ms}
        if self.error is not None:
            data["error"] = self.error
        return data


def timeout() -> float:
    return float(chat_settings.HEALTH_TIMEOUT)


async def _timed(name: str, probe: Callable[[], Awaitable[None]]) -> CheckResult:
    """Run ``probe`` within the timeout; any exception becomes a failed result."""
    limit = timeout()
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), limit)
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
        error = f"timed out after {limit:g}s"
        logger.warning("Health check %s %s", name, error)
    except Exception as exc:
        # The class name only: messages of database and Redis errors carry hosts and ports,
        # sometimes user names. The log has the whole exception.
        error = type(exc).__name__
        logger.warning("Health check %s failed", name, exc_info=True)
    else:
        error = None
    ms = round((time.perf_counter() - start) * 1000, 1)
    return CheckResult(ok=error is None, ms=ms, error=error)


def _select_one(alias: str) -> None:
    connection = connections[alias]
    # Opens a connection if the thread has none and closes it afterwards: the check's
    # threads keep no connection between probes.
    with connection.temporary_connection() as cursor:
        cursor.execute("SELECT 1")
        row = cursor.fetchone()
    if row is None or row[0] != 1:
        raise RuntimeError("SELECT 1 did not return 1")


async def check_database(alias: str = "default") -> CheckResult:
    """A trivial query on the database ``alias``."""

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_db_executor, _select_one, alias)

    return await _timed("database", probe)


async def _release(layer: Any, channel: str) -> None:
    """Drop the probe channel again. The channel layer API has no call for it; a receive
    that is cancelled is how a consumer leaves, and the layers clean up then (channels-redis'
    pub/sub layer unsubscribes, the others forget the channel's buffer)."""
    waiter = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)  # let it start waiting, so that the cancel runs its cleanup
    waiter.cancel()
    # Waits for the cleanup without raising its CancelledError (a cancel of our own caller
    # still goes through).
    await asyncio.wait([waiter], timeout=timeout())


async def check_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> CheckResult:
    """One message through the channel layer ``alias`` and back."""

    async def probe() -> None:
        layer = get_channel_layer(alias)
        if layer is None:
            raise LookupError("no channel layer")
        channel = await layer.new_channel("support_chat.health.")
        nonce = uuid.uuid4().hex
        await layer.send(channel, {"type": MESSAGE_TYPE, "nonce": nonce})
        # A receive cut short by the timeout cleans up by itself; one that got its
        # message leaves the channel behind on some layers.
        while (await layer.receive(channel)).get("nonce") != nonce:
            pass  # a fresh channel: nothing else should arrive on it
        await _release(layer, channel)

    return await _timed("channel_layer", probe)


async def check_presence() -> CheckResult:
    """The presence store answers."""

    async def probe() -> None:
        await get_presence_store().ping()

    return await _timed("presence", probe)


async def run_checks() -> dict[str, CheckResult]:
    """All readiness checks at once, by name."""
    database, layer, presence = await asyncio.gather(
        check_database(), check_channel_layer(), check_presence()
    )
    return {"database": database, "channel_layer": layer, "presence": presence}
