"""Short-lived signed tokens for WebSocket clients that have no session cookie.

A client authenticated on the REST API (session, or whatever the host's DRF
authentication allows) asks ``POST <mount>/ws-token`` and connects with
``?token=<token>`` within ``WS_TOKEN_MAX_AGE`` seconds. The token is signed (not
encrypted) with SECRET_KEY and holds the user id and a one-way fingerprint of the
session it came from -- never the session key itself -- so a token read from a log is
useless once expired and reveals no long-lived secret.
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.utils.crypto import salted_hmac

from . import names
from .conf import chat_settings

SALT = "django_support_chat.ws-token"


def session_fingerprint(session_key: str | None) -> str | None:
    """A one-way, keyed digest of a session key: lets logout close the sockets of that
    session without the session key travelling anywhere."""
    if not session_key:
        return None
    return salted_hmac(SALT, session_key, algorithm="sha256").hexdigest()[:32]


def make_token(user: Any, session_key: str | None = None) -> str:
    fingerprint = session_fingerprint(session_key) or ""
    return signing.dumps({"u": user.pk, "s": fingerprint}, salt=SALT, compress=True)


def read_token(token: str) -> tuple[Any, str | None] | None:
    """``(user, session fingerprint)`` for a valid, unexpired token of an active user."""
    try:
        data = signing.loads(token, salt=SALT, max_age=chat_settings.WS_TOKEN_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    user = names.active_users().filter(pk=data.get("u")).first()
    if user is None:
        return None
    return user, (data.get("s") or None)
