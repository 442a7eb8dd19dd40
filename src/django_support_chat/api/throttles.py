"""DRF scoped throttles whose rates come from ``SUPPORT_CHAT["THROTTLE_RATES"]``."""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

from ..conf import chat_settings

SEND_SCOPE = "support_chat_send"
DEFAULT_SCOPE = "support_chat"


class ChatRateThrottle(ScopedRateThrottle):
    """Per-user (per-IP for anonymous) limits; a scope set to ``None`` is unlimited."""

    def get_rate(self) -> str | None:
        return chat_settings.THROTTLE_RATES.get(self.scope)
