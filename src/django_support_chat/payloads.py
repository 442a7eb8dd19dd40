"""What a message, a conversation and a notification look like on the wire: the one representation.

The REST API (``api/serializers.py``, whose DRF serializers describe this shape for the
OpenAPI schema and delegate to these functions), the realtime events and the inbox all use
these builders. No DRF here: services and consumers import this module.

People are named through ``names``: a staff member is shown by ``staff_name`` (never a
login or an email address by default), a customer by ``customer_name``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from . import names
from .models import Conversation, Message, Notification, Side
from .text import render_text

# Characters of the last message's text that a conversation carries (list snippets).
SNIPPET_LENGTH = 200


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in the current time zone, "Z" for UTC (DRF's DateTimeField format)."""
    if value is None:
        return None
    if settings.USE_TZ and timezone.is_aware(value):
        value = timezone.localtime(value)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def person(user: Any, side: Side | str) -> dict[str, Any] | None:
    """``{"id", "name"}`` of a customer (``side`` user) or a staff member (``side`` staff)."""
    if user is None:
        return None
    name = names.staff_name(user) if side == Side.STAFF else names.customer_name(user)
    return {"id": user.pk, "name": name}


def message_html(message: Message) -> str:
    """The message's safe HTML: the copy rendered when it was stored (``Message.html``).

    Only a row written without it (a raw insert) is rendered here, with ``render_text``."""
    return message.html or render_text(message.text)


def message_data(message: Message, conversation: Conversation | None = None) -> dict[str, Any]:
    """A message; ``status`` is read from ``conversation``'s watermarks (default: its own)."""
    return {
        "id": message.pk,
        "seq": message.seq,
        "conversation": message.conversation_id,
        "sender": person(message.sender, message.sender_side),
        "sender_side": str(message.sender_side),
        "text": message.text,
        "html": message_html(message),
        "client_id": str(message.client_id),
        "created_at": timestamp(message.created_at),
        "status": str(message.status_for_recipient(conversation or message.conversation)),
    }


def last_message_data(message: Message | None) -> dict[str, Any] | None:
    if message is None:
        return None
    return {
        "id": message.pk,
        "sender_side": str(message.sender_side),
        "text": message.text[:SNIPPET_LENGTH],
        "created_at": timestamp(message.created_at),
    }


def conversation_data(conversation: Conversation, side: Side | str = Side.STAFF) -> dict[str, Any]:
    """A conversation as ``side`` sees it (``unread_count`` is that side's)."""
    c = conversation
    return {
        "id": c.pk,
        "customer": person(c.customer, Side.USER),
        "assigned_to": person(c.assigned_to, Side.STAFF),
        "status": str(c.status),
        "last_message_at": timestamp(c.last_message_at),
        "unread_count": c.unread_count(side),
        "unread_user_count": c.unread_user_count,
        "unread_staff_count": c.unread_staff_count,
        **c.watermarks(),
        "last_seq": c.last_seq,
        # Filled by the views and services with a known message, never a query per row.
        "last_message": last_message_data(getattr(c, "last_message", None)),
        "created_at": timestamp(c.created_at),
        "updated_at": timestamp(c.updated_at),
    }


def notification_data(n: Notification) -> dict[str, Any]:
    """A notification for its recipient; ``message_id`` is null unless it is about one,
    ``emailed_at`` null until an email told them of it."""
    payload = n.payload if isinstance(n.payload, dict) else {}
    return {
        "id": n.pk,
        "type": str(n.type),
        "conversation_id": payload.get("conversation_id"),
        "message_id": payload.get("message_id"),
        "created_at": timestamp(n.created_at),
        "read": n.read_at is not None,
        "emailed_at": timestamp(n.emailed_at),
    }
