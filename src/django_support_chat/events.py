"""What goes over the wire: event names, the envelope, group names, and publishing.

Events are published after the database transaction commits (``transaction.on_commit``
with ``robust=True``), so a failed broadcast never loses or rolls back a stored change;
clients re-sync from the database on every (re)connect.
"""

from __future__ import annotations

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


def _send(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": HANDLER_TYPE, "event": event})
    except Exception:  # the database already holds the change; clients re-sync
        logger.exception("Could not publish %s to %s", event.get("type"), group)


def publish(groups: list[str], event_type: str, data: dict[str, Any]) -> None:
    """Send one event to ``groups`` once the current transaction commits."""
    event = envelope(event_type, data)

    def send() -> None:
        for group in groups:
            _send(group, event)

    transaction.on_commit(send, robust=True)
