"""Settings for benchmarking the example project: example.settings with the limits that
would throttle a load generator lifted. Everything else is the example project as shipped.

Changed (and reported in docs/performance.md):

- ``DEBUG`` off (DEBUG keeps every SQL query in memory and serves static files).
- ``SUPPORT_CHAT["THROTTLE_RATES"]``: both scopes ``None`` (unlimited). The load generator
  sends up to 2.5 messages/s per user, far above the default 30/minute send budget.
- ``SUPPORT_CHAT["WS_FLOOD_LIMIT"]``: 1,000,000 frames per 10 s (default 100).
- ``SUPPORT_CHAT["WS_TOKEN_MAX_AGE"]``: one day, so tokens made before a long ramp stay valid.
- ``CONN_MAX_AGE``: ``BENCH_CONN_MAX_AGE`` (default 60 s, persistent connections; the example
  project uses 0, a new PostgreSQL connection per request / per WebSocket frame).
- Logging: warnings only.
"""

from __future__ import annotations

import os

from example.settings import *  # noqa: F403
from example.settings import DATABASES, SUPPORT_CHAT

DEBUG = False

SUPPORT_CHAT = {
    **SUPPORT_CHAT,
    "THROTTLE_RATES": {"support_chat_send": None, "support_chat": None},
    "WS_FLOOD_LIMIT": 1_000_000,
    "WS_TOKEN_MAX_AGE": 86_400,
}

DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("BENCH_CONN_MAX_AGE", "60"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
