"""Is this worker's channel layer delivering? A cheap probe, and what to do when it was not.

channels-redis' ``RedisPubSubChannelLayer`` survives a Redis restart or a dropped
connection silently: redis-py reconnects and subscribes again, and whatever was published
in between is gone, while every socket stays open and looks live. Nothing on the socket
shows the loss. So each worker (each event loop) keeps one ``LayerWatch``, owned by the
consumers' ``Watchdog``, which

- once per ``HEARTBEAT_INTERVAL`` (the watchdog sweep) sends one message to a group of its
  own and expects it back within ``PROBE_TIMEOUT`` seconds: one layer message per worker
  per interval;
- hears about trouble at once: a ``group_send`` that failed (``events.send_to_groups``
  calls ``report_failure``) and, on channels-redis' pub/sub layer, every re-established
  subscription connection (a redis-py connect callback);
- while unhealthy, probes every ``RETRY_INTERVAL`` seconds; when a probe comes back, the
  layer is delivering again and the sockets are told to ``resync`` (they fetch what they
  missed from the database by sequence number);
- if the layer stays unhealthy for ``give_up_after()`` seconds (three heartbeat
  intervals), closes the sockets with ``1012`` so clients reconnect, maybe to a healthier
  worker, and catch up there.

The protocol side is in docs/protocol.md ("Delivery guarantees"), the operations side in
docs/realtime.md ("When Redis goes away").
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

from . import metrics
from .conf import chat_settings

logger = logging.getLogger("django_support_chat.layerwatch")

PROBE_TIMEOUT = 3.0  # seconds for a probe to come back through the layer
RETRY_INTERVAL = 1.0  # seconds between probes while the layer is unhealthy
PROBE_TYPE = "support_chat.probe"

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LayerWatch] = (
    weakref.WeakKeyDictionary()
)


def give_up_after() -> float:
    """Seconds of continuous trouble after which the sockets are closed with 1012."""
    return 3.0 * chat_settings.HEARTBEAT_INTERVAL


def report_failure(reason: str) -> None:
    """Something failed to go through the layer on the running loop (a ``group_send``,
    say). Safe to call from anywhere; does nothing without a watch on this loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    watch = _by_loop.get(loop)
    if watch is not None:
        watch.report_failure(reason)


class LayerWatch:
    """The layer health of one event loop. ``resync()`` and ``give_up()`` are the
    watchdog's: tell every open socket to resync, close every open socket with 1012."""

    def __init__(
        self, resync: Callable[[], Awaitable[None]], give_up: Callable[[], Awaitable[None]]
    ) -> None:
        self.resync, self.give_up = resync, give_up
        self.healthy = True
        self.trouble_since: float | None = None
        self.recoveries = 0  # times the layer came back (tests and logs)
        self.group = f"support_chat.probe.{uuid.uuid4().hex}"
        self.channel: str | None = None
        self.sent = self.seen = 0
        self.arrived = asyncio.Event()
        self.reader: asyncio.Future[None] | None = None
        self.recovery: asyncio.Future[None] | None = None
        self.hooked: weakref.WeakSet[Any] = weakref.WeakSet()
        _by_loop[asyncio.get_running_loop()] = self

    # -- probing ---------------------------------------------------------------------

    async def probe(self) -> bool:
        """One message to our own group; True if it came back within PROBE_TIMEOUT."""
        layer = get_channel_layer()
        if layer is None:
            return True
        try:
            await asyncio.wait_for(self._round_trip(layer), PROBE_TIMEOUT)
            return True
        except Exception as exc:  # TimeoutError included: the probe did not come back
            logger.debug("Channel layer probe failed: %r", exc)
            return False

    async def _round_trip(self, layer: Any) -> None:
        if self.channel is None:
            self.channel = await layer.new_channel("support_chat.probe.")
        if self.reader is None or self.reader.done():
            self.reader = asyncio.ensure_future(self._read(layer, self.channel))
        # Cheap when already subscribed (pub/sub layer: no Redis command); renews the
        # membership on layers that expire groups.
        await layer.group_add(self.group, self.channel)
        self._hook_reconnects(layer)
        self.sent += 1
        number = self.sent
        await layer.group_send(self.group, {"type": PROBE_TYPE, "n": number})
        while self.seen < number:
            self.arrived.clear()
            await self.arrived.wait()

    async def _read(self, layer: Any, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the list-based layer raises while Redis is away
                await asyncio.sleep(RETRY_INTERVAL)
                continue
            if isinstance(message, dict) and message.get("type") == PROBE_TYPE:
                self.seen = max(self.seen, int(message.get("n", 0)))
                self.arrived.set()

    def _hook_reconnects(self, layer: Any) -> None:
        """channels-redis' pub/sub layer: be told whenever a subscription connection is
        established again (redis-py subscribes again by itself; what was published
        meanwhile is lost). Other layers have no such connection: the probe covers them."""
        try:
            shards = list(getattr(layer, "_shards", None) or [])
        except Exception:
            return
        for shard in shards:
            connection = getattr(getattr(shard, "_pubsub", None), "connection", None)
            register = getattr(connection, "register_connect_callback", None)
            if register is None or connection in self.hooked:
                continue
            register(self._reconnected)  # kept as a weak method: this watch outlives it
            self.hooked.add(connection)

    def _reconnected(self, connection: Any) -> None:
        metrics.LAYER_RECONNECTS.inc()
        self.report_failure("the layer's subscription connection was re-established")

    # -- state -----------------------------------------------------------------------

    async def check(self) -> None:
        """The periodic step (one probe per interval while healthy)."""
        if self.healthy and not await self.probe():
            metrics.LAYER_ERRORS.labels(operation="probe").inc()
            self.report_failure(f"a probe did not come back within {PROBE_TIMEOUT:g}s")

    def report_failure(self, reason: str) -> None:
        if self.healthy:
            self.healthy = False
            self.trouble_since = time.monotonic()
            logger.warning(
                "layer.trouble reason=%r; probing until the channel layer delivers again",
                reason,
                extra={"event": "layer.trouble", "reason": reason},
            )
        if self.recovery is None or self.recovery.done():
            self.recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        while not self.healthy:
            await asyncio.sleep(RETRY_INTERVAL)
            if await self.probe():
                down = time.monotonic() - (self.trouble_since or time.monotonic())
                self.healthy, self.trouble_since = True, None
                self.recoveries += 1
                metrics.LAYER_RECOVERIES.inc()
                logger.warning(
                    "layer.recovered down=%.1fs; telling the sockets to resync",
                    down,
                    extra={"event": "layer.recovered", "down": round(down, 3)},
                )
                try:
                    await self.resync()
                except Exception:
                    logger.exception("Resync after a channel layer outage failed")
                return
            assert self.trouble_since is not None
            if time.monotonic() - self.trouble_since > give_up_after():
                metrics.LAYER_GAVE_UP.inc()
                logger.error(
                    "layer.gave_up down=%.0fs; closing the sockets with 1012",
                    give_up_after(),
                    extra={"event": "layer.gave_up", "down": give_up_after(), "code": 1012},
                )
                try:
                    await self.give_up()
                except Exception:
                    logger.exception("Closing the sockets after a channel layer outage failed")
                self.trouble_since = time.monotonic()  # sockets opened meanwhile get as long

    def close(self) -> None:
        for task in (self.reader, self.recovery):
            if task is not None:
                task.cancel()
