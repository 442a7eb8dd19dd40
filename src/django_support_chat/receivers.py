"""Internal signal handlers, connected in ``AppConfig.ready()``."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out

from . import events, notifications, signals, tokens

logger = logging.getLogger("django_support_chat.realtime")


def close_sockets_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A user who logs out stops receiving: their sockets on that session close at once."""
    if user is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    fingerprint = tokens.session_fingerprint(session_key)
    try:
        async_to_sync(layer.group_send)(
            events.user_group(user.pk),
            {"type": "chat.session_ended", "session": fingerprint},
        )
    except Exception:
        logger.exception("Could not close the sockets of user %s on logout", user.pk)


def schedule_email(sender: Any, message: Any, conversation: Any, **kwargs: Any) -> None:
    """After a message is committed: pending emails for whoever it should reach."""
    notifications.schedule_for_message(message, conversation)


def connect() -> None:
    signals.message_created.connect(schedule_email, dispatch_uid="support_chat_email")
    user_logged_out.connect(close_sockets_on_logout, dispatch_uid="support_chat_logout")
