"""DRF throttles of the REST API: the shared rate limits of ``django_support_chat.ratelimits``."""

from __future__ import annotations

from ..ratelimits import DEFAULT_SCOPE, SEND_SCOPE, ChatRateThrottle

__all__ = ["DEFAULT_SCOPE", "SEND_SCOPE", "ChatRateThrottle"]
