"""What goes over the wire: event names, the envelope, group names, and publishing.

Events are published after the database transaction commits (``transaction.on_commit``
with ``robust=True``), so a failed broadcast never loses or rolls back a stored change;
clients re-sync from the database on every (re)connect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger("django_support_chat.events")

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
ERROR = "error"

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


async def _send_all(groups: list[str], event: dict[str, Any]) -> None:
    """Send ``event`` to every group at once: one hop from the caller's thread to the event
    loop per event, not one per group (the database thread waits for each hop)."""
    layer = get_channel_layer()
    if layer is None:
        return
    results = await asyncio.gather(
        *(layer.group_send(group, {"type": HANDLER_TYPE, "event": event}) for group in groups),
        return_exceptions=True,
    )
    for group, result in zip(groups, results, strict=True):
        if isinstance(result, BaseException):  # the database already holds the change
            logger.error("Could not publish %s to %s", event.get("type"), group, exc_info=result)


def publish(groups: list[str], event_type: str, data: dict[str, Any]) -> None:
    """Send one event to ``groups`` once the current transaction commits."""
    event = envelope(event_type, data)

    def send() -> None:
        try:
            async_to_sync(_send_all)(groups, event)
        except Exception:  # clients re-sync from the database
            logger.exception("Could not publish %s to %s", event_type, groups)

    transaction.on_commit(send, robust=True)
