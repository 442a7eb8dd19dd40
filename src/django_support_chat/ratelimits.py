"""Rate limits shared by the REST API and the WebSocket consumers: DRF's scoped throttle,
with rates from ``SUPPORT_CHAT["THROTTLE_RATES"]`` and one cache key per user and scope, so
a send costs the same budget whichever way it arrives."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from rest_framework.throttling import ScopedRateThrottle

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

    def get_rate(self) -> str | None:
        return chat_settings.THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Any, view: Any) -> bool:
        # The counts live in Django's cache (Redis, with several workers). A cache that is
        # away must not turn every send into a 500: allow, and say so in the log.
        try:
            return super().allow_request(request, view)  # type: ignore[no-any-return]
        except Exception:
            logger.warning("Rate limit cache unavailable; allowing the request", exc_info=True)
            return True


def check(user: Any, scope: str) -> float | None:
    """Count one request of ``user`` in ``scope``: None when allowed, else the seconds to
    wait (outside DRF's request cycle, e.g. a WebSocket frame)."""
    throttle = ChatRateThrottle()
    request = SimpleNamespace(user=user, META={})
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):  # type: ignore[arg-type]
        return None
    return throttle.wait() or 0.0
