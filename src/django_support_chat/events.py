"""What goes over the wire: event names, the envelope, group names, and publishing.

Events are published after the database transaction commits (``transaction.on_commit``
with ``robust=True``), so a failed broadcast never loses or rolls back a stored change;
clients re-sync from the database on every (re)connect. Each event is serialised to JSON
once, when it is published.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from . import dbthreads, layerwatch, metrics

logger = logging.getLogger("django_support_chat.events")

T = TypeVar("T")

PROTOCOL_VERSION = 1

MESSAGE_NEW = "message:new"
MESSAGE_DELIVERED = "message:delivered"
MESSAGE_READ = "message:read"
PRESENCE_UPDATE = "presence:update"
TYPING_START = "typing:start"
TYPING_STOP = "typing:stop"
CONVERSATION_NEW = "conversation:new"
CONVERSATION_UPDATED = "conversation:updated"
UNREAD_UPDATE = "unread:update"
# To the recipient's user group, for every Notification row the services write (toasts).
NOTIFICATION_NEW = "notification:new"
# Sent by a worker whose channel layer delivers again after it may have dropped events
# (layerwatch.py): sync by seq; the lobby reloads its list.
RESYNC = "resync"
ERROR = "error"

_KNOWN_TYPES = frozenset(
    {
        MESSAGE_NEW,
        MESSAGE_DELIVERED,
        MESSAGE_READ,
        PRESENCE_UPDATE,
        TYPING_START,
        TYPING_STOP,
        CONVERSATION_NEW,
        CONVERSATION_UPDATED,
        UNREAD_UPDATE,
        NOTIFICATION_NEW,
        RESYNC,
    }
)

# Consumers receive group messages through this handler name (``chat_event``).
HANDLER_TYPE = "chat.event"


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "type": event_type,
        "data": data,
        "ts": timezone.now().isoformat(),
    }


def conversation_group(conversation_id: int) -> str:
    """Sockets inside one conversation (the customer's and staff's)."""
    return f"support_chat.conversation.{int(conversation_id)}"


def user_group(user_id: int) -> str:
    """Every socket of one user (badge counts across pages and tabs)."""
    return f"support_chat.user.{int(user_id)}"


STAFF_GROUP = "support_chat.staff"

# Names this process in the layer messages it publishes: its sockets time the delivery of
# its own events (sendqueue.DeliveryLag), on its own clock.
WORKER_ID = uuid.uuid4().hex[:12]


def group_message(event: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
    """The channel-layer message that carries ``event``: serialised to JSON once here, so
    each receiving socket sends the text as it is instead of encoding it again."""
    message: dict[str, Any] = {
        "type": HANDLER_TYPE,
        "text": json.dumps(event),
        # For the metrics, never sent to clients: the event's type, and the wall-clock
        # publish time (it crosses processes) for the delivery latency.
        "event_type": event.get("type"),
        "published": time.time(),
        "worker": WORKER_ID,
    }
    if origin is not None:
        message["origin"] = origin  # the sending socket skips its own typing / presence
    return message


async def send_to_groups(groups: list[str], message: dict[str, Any]) -> None:
    """Send one layer message to every group at once; a failure is logged, not raised
    (the database already holds the change and clients re-sync on reconnect)."""
    layer = get_channel_layer()
    if layer is None:
        return
    results = await asyncio.gather(
        *(layer.group_send(group, message) for group in groups), return_exceptions=True
    )
    failed = [(g, r) for g, r in zip(groups, results, strict=True) if isinstance(r, BaseException)]
    if len(failed) < len(groups):
        metrics.EVENTS_PUBLISHED.labels(type=_metric_type(message)).inc()
    if failed:
        metrics.LAYER_ERRORS.labels(operation="publish").inc()
        # One line per event, not per group; the event's type and groups, never its data.
        event_type = _event_type(message)
        failed_groups = [group for group, _ in failed]
        logger.error(
            "events.publish_failed type=%s: Could not publish to %s",
            event_type,
            ",".join(failed_groups),
            exc_info=failed[0][1],
            extra={
                "event": "events.publish_failed",
                "event_type": event_type,
                "groups": failed_groups,
            },
        )
        # This worker's sockets resync once the layer delivers again.
        layerwatch.report_failure("a group_send failed")


def _metric_type(message: dict[str, Any]) -> str:
    """The ``type`` label: the event's type, if it is one of ours (a bounded set)."""
    event_type = message.get("event_type")
    if event_type is None and "event" in message:
        event_type = message["event"].get("type")
    return event_type if event_type in _KNOWN_TYPES else "other"


def _event_type(message: dict[str, Any]) -> str | None:
    """The ``type`` of the event a layer message carries (for a log line, when a send
    failed: parsing the JSON again is fine there)."""
    event = message.get("event")
    if event is None:
        try:
            event = json.loads(message.get("text") or "{}")
        except ValueError:
            return None
    return event.get("type") if isinstance(event, dict) else None


# Set by ``call_and_publish`` around a database call made from the event loop: events
# committed inside it are queued here and sent by the loop, instead of the database
# thread blocking on an ``async_to_sync`` hop to the (busy) loop for each one.
_queued: contextvars.ContextVar[list[tuple[list[str], dict[str, Any]]] | None] = (
    contextvars.ContextVar("support_chat_queued_events", default=None)
)


_background: set[asyncio.Future[None]] = set()  # flushes whose caller was cancelled


async def call_and_publish(func: Callable[..., T], *args: Any, lane: int | None = None) -> T:
    """Run ``func(*args)`` on a database thread (``dbthreads.run``: the lane of ``lane``, a
    conversation id); then send the events its transactions committed from the event loop,
    in commit order. Events are sent even when ``func`` raises after a commit, or when the
    caller is cancelled (they go out once the database call ends)."""
    queue: list[tuple[list[str], dict[str, Any]]] = []
    token = _queued.set(queue)
    try:
        call = asyncio.ensure_future(dbthreads.run(lane, func, *args))  # copies the context
    finally:
        _queued.reset(token)

    async def flush() -> None:
        for groups, message in queue:
            await send_to_groups(groups, message)

    try:
        return await asyncio.shield(call)
    finally:
        if call.done():
            await flush()
        else:  # cancelled while the database thread still runs

            def flush_later(done: asyncio.Future[T]) -> None:
                if not done.cancelled():
                    done.exception()  # mark it retrieved: nobody awaits it any more
                task = asyncio.ensure_future(flush())
                _background.add(task)
                task.add_done_callback(_background.discard)

            call.add_done_callback(flush_later)


def publish(
    groups: list[str],
    event_type: str,
    data: dict[str, Any] | Callable[[], dict[str, Any]],
) -> None:
    """Send one event to ``groups`` once the current transaction commits.

    ``data`` may be a callable: it is called after the commit, outside any row lock, so
    building the payload (names from host hooks, rendering) can never hold a lock or roll
    back the change. A payload that fails to build is logged and the event is dropped:
    clients re-sync from the database.
    """
    queue = _queued.get()

    def send() -> None:
        try:
            message = group_message(envelope(event_type, data() if callable(data) else data))
        except Exception:
            logger.exception(
                "events.build_failed type=%s: Could not build the event for %s",
                event_type,
                ",".join(groups),
                extra={"event": "events.build_failed", "event_type": event_type, "groups": groups},
            )
            return
        if queue is not None:
            queue.append((groups, message))
            return
        try:
            async_to_sync(send_to_groups)(groups, message)
        except Exception:  # clients re-sync from the database
            metrics.LAYER_ERRORS.labels(operation="publish").inc()
            logger.exception(
                "events.publish_failed type=%s: Could not publish to %s",
                event_type,
                ",".join(groups),
                extra={
                    "event": "events.publish_failed",
                    "event_type": event_type,
                    "groups": groups,
                },
            )

    transaction.on_commit(send, robust=True)
