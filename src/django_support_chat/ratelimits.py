"""Rate limits shared by the REST API and the WebSocket consumers: DRF's scoped throttle,
with rates from ``SUPPORT_CHAT["THROTTLE_RATES"]`` and one cache key per user and scope, so
a send costs the same budget whichever way it arrives."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from rest_framework.throttling import ScopedRateThrottle

from . import metrics
from .conf import chat_settings

logger = logging.getLogger("django_support_chat.ratelimits")

SEND_SCOPE = "support_chat_send"
DEFAULT_SCOPE = "support_chat"
# WebSocket frames that cost a query (docs/protocol.md#limits).
SYNC_SCOPE = "support_chat_sync"
READ_SCOPE = "support_chat_read"  # message:read and message:delivered
PRESENCE_SCOPE = "support_chat_presence"


class ChatRateThrottle(ScopedRateThrottle):
    """Per-user (per-IP for anonymous) limits; a scope set to ``None`` is unlimited."""

    # REST requests refused here log ``http.throttled``; WebSocket frames (``check``) are
    # logged by their consumer instead, at most once per socket per window.
    log_refusals = True

    def get_rate(self) -> str | None:
        return chat_settings.THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        # The counts live in Django's cache (Redis, with several workers). A cache that is
        # away must not turn every send into a 500: allow, and say so in the log.
        try:
            allowed: bool = super().allow_request(request, view)
        except Exception:
            scope = getattr(view, "throttle_scope", None)
            logger.warning(
                "ratelimit.cache_unavailable scope=%s: Rate limit cache unavailable; allowing the request",
                scope,
                exc_info=True,
                extra={"event": "ratelimit.cache_unavailable", "scope": scope},
            )
            return True
        if not allowed and self.log_refusals:
            metrics.THROTTLED.labels(interface="http", scope=self.scope or "none").inc()
            user = getattr(request, "user", None)
            user_id = user.pk if user is not None and user.is_authenticated else None
            logger.warning(
                "http.throttled scope=%s user=%s",
                self.scope,
                user_id,
                extra={"event": "http.throttled", "scope": self.scope, "user_id": user_id},
            )
        return allowed


def check(user: Any, scope: str) -> float | None:
    """Count one request of ``user`` in ``scope``: None when allowed, else the seconds to
    wait (outside DRF's request cycle, e.g. a WebSocket frame)."""
    throttle = ChatRateThrottle()
    throttle.log_refusals = False
    request = SimpleNamespace(user=user, META={})
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):  # type: ignore[arg-type]
        return None
    return throttle.wait() or 0.0
