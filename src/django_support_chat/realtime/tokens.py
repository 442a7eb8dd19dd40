"""Short-lived signed tokens for WebSocket clients that have no session cookie.

A client authenticated on the REST API (session, or whatever the host's DRF
authentication allows) asks ``POST <mount>/ws-token`` and connects with
``?token=<token>`` within ``WS_TOKEN_MAX_AGE`` seconds. The token is signed with
SECRET_KEY, names the user and the session it came from, and is useless once expired,
so no long-lived secret ever sits in a URL or a log.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing

from ..conf import chat_settings

SALT = "django_support_chat.ws-token"


def make_token(user: Any, session_key: str | None = None) -> str:
    return signing.dumps({"u": user.pk, "s": session_key or ""}, salt=SALT, compress=True)


def read_token(token: str) -> tuple[Any, str | None] | None:
    """``(user, session_key)`` for a valid, unexpired token of an active user; else None."""
    try:
        data = signing.loads(token, salt=SALT, max_age=chat_settings.WS_TOKEN_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    user = get_user_model().objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None:
        return None
    return user, (data.get("s") or None)
