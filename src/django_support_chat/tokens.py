"""Short-lived signed tokens for WebSocket clients that have no session cookie.

A client authenticated on the REST API (session, or whatever the host's DRF
authentication allows) asks ``POST <mount>/ws-token`` and connects with
``?token=<token>`` within ``WS_TOKEN_MAX_AGE`` seconds. The token is signed (not
encrypted) with SECRET_KEY and holds the user id and a one-way fingerprint of the
session it came from -- never the session key itself -- so a token read from a log is
useless once expired and reveals no long-lived secret.

A token is refused once its session has ended (logout, expiry, deletion): at issue the
fingerprint is mapped to the session key in Django's cache (``session_key_for``), and
``read_token`` looks the session up. ``recheck`` is the same question, batched, for every
open socket of a worker (the consumers' watchdog asks it each heartbeat interval).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core import signing
from django.core.cache import cache
from django.utils import timezone
from django.utils.crypto import salted_hmac

from . import names, roles
from .conf import chat_settings

logger = logging.getLogger("django_support_chat.tokens")

SALT = "django_support_chat.ws-token"
_SESSION_POINTER = "support_chat:ws-token-session:"
_DB_ENGINES = ("django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db")

# Verdicts of ``recheck`` (the consumers close with 4401 and 4403).
ENDED = "ended"  # user deleted or inactive, or the session ended
NOT_STAFF = "not_staff"  # a staff socket whose user the predicates no longer accept


def session_fingerprint(session_key: str | None) -> str | None:
    """A one-way, keyed digest of a session key: lets logout close the sockets of that
    session without the session key travelling anywhere."""
    if not session_key:
        return None
    return salted_hmac(SALT, session_key, algorithm="sha256").hexdigest()[:32]


def make_token(user: Any, session_key: str | None = None) -> str:
    fingerprint = session_fingerprint(session_key) or ""
    if session_key:
        try:  # for as long as the session may live: token sockets are re-checked
            cache.set(_SESSION_POINTER + fingerprint, session_key, settings.SESSION_COOKIE_AGE)
        except Exception:  # the token will be refused (fail closed), not the request
            logger.exception("Could not record the session of a WebSocket token")
    return signing.dumps({"u": user.pk, "s": fingerprint}, salt=SALT, compress=True)


def session_key_for(fingerprint: str | None) -> str | None:
    """The session key a token with this fingerprint was issued from, if still known."""
    if not fingerprint:
        return None
    try:
        key = cache.get(_SESSION_POINTER + fingerprint)
    except Exception:
        logger.exception("Could not look up the session of a WebSocket token")
        return None
    return key if isinstance(key, str) else None


def read_token_session(token: str) -> tuple[Any, str | None, str | None] | None:
    """``(user, session fingerprint, session key)`` for a valid, unexpired token of an
    active user whose session (if it was issued from one) has not ended."""
    try:
        data = signing.loads(token, salt=SALT, max_age=chat_settings.WS_TOKEN_MAX_AGE)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict):
        return None
    user = names.active_users().filter(pk=data.get("u")).first()
    if user is None:
        return None
    fingerprint = data.get("s") or None
    if fingerprint is None:  # issued without a session (DRF token authentication)
        return user, None, None
    session_key = session_key_for(fingerprint)
    if session_key is None or not live_sessions([(session_key, user.pk)]):
        return None  # logged out, expired or deleted: the token ended with it
    return user, fingerprint, session_key


def read_token(token: str) -> tuple[Any, str | None] | None:
    """``(user, session fingerprint)``, as ``read_token_session``."""
    result = read_token_session(token)
    return None if result is None else (result[0], result[1])


def live_sessions(pairs: Iterable[tuple[str, Any]]) -> set[str]:
    """The keys among ``(session key, user pk)`` whose session still exists, has not
    expired and is signed in as that user. One query for the database backends."""
    pairs = list(pairs)
    if not pairs:
        return set()
    engine = settings.SESSION_ENGINE
    if engine.endswith("signed_cookies"):  # nothing is kept server-side to end
        return {key for key, _pk in pairs}
    store = import_module(engine).SessionStore
    keys = {key for key, _pk in pairs}
    data: dict[str, dict[str, Any]] = {}
    if engine in _DB_ENGINES:
        rows = store.get_model_class().objects.filter(
            session_key__in=keys, expire_date__gt=timezone.now()
        )
        for row in rows:
            data[row.session_key] = store().decode(row.session_data)
    else:
        for key in keys:
            data[key] = store(session_key=key).load()
    return {key for key, pk in pairs if str(data.get(key, {}).get(SESSION_KEY)) == str(pk)}


def recheck(sockets: list[tuple[Any, str | None, bool]]) -> list[tuple[str | None, Any]]:
    """For each ``(user pk, session key or None, needs staff)``: ``(verdict, fresh user)``,
    the verdict None (still authorized), ``ENDED`` or ``NOT_STAFF``. One query for the
    users and one for the sessions, whatever the number of sockets."""
    users = get_user_model()._default_manager.in_bulk({pk for pk, _key, _staff in sockets})
    alive = live_sessions([(key, pk) for pk, key, _staff in sockets if key])
    verdicts: list[tuple[str | None, Any]] = []
    for pk, key, needs_staff in sockets:
        user = users.get(pk)
        if user is None or not getattr(user, "is_active", True) or (key and key not in alive):
            verdicts.append((ENDED, user))
        elif needs_staff and not roles.is_staff(user):
            verdicts.append((NOT_STAFF, user))
        else:
            verdicts.append((None, user))
    return verdicts
