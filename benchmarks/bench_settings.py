"""Settings of the benchmarked site: the example project with the documented production
settings on top (``deploy/settings_production.py``, applied exactly as
tests/e2e/nginx_settings.py and a site do), and only what a load generator needs changed.

The environment is what ``deploy/systemd`` gives a worker, pointed at loopback: run.py sets
``SECRET_KEY``, ``ALLOWED_HOSTS=127.0.0.1,localhost``, ``DATABASE_URL``, ``REDIS_URL`` and
``STATIC_ROOT`` (a temp dir). ``DJANGO_SECURE_COOKIES`` keeps its production default ("1"):
the load generator sends its cookies itself over plain http, so Secure cookies change nothing.

Differences from production (each one also listed in docs/performance.md, "Settings"):

- ``SUPPORT_CHAT["THROTTLE_RATES"]``: every scope ``None`` (unlimited). The load generator
  sends several messages/s per user, far above the default 30/minute send budget.
- ``SUPPORT_CHAT["WS_FLOOD_LIMIT"]``: 1,000,000 frames per 10 s (default 100).
- ``SUPPORT_CHAT["WS_TOKEN_MAX_AGE"]``: one day (default 60 s), so the ``?token=`` tokens the
  harness makes before a long ramp stay valid.
- ``ROOT_URLCONF``: ``bench_urls`` = the example project's URLs plus the REST floor views
  under ``bench/floor/`` (benchmarks/bench_urls.py); nothing else of the site changes.

Everything else, including ``DEBUG = False``, ``DATABASES`` (connection handling included),
``CHANNEL_LAYERS``, ``CACHES`` and ``LOGGING``, is production's (or the example project's
where production says nothing).
"""

from __future__ import annotations

from example.settings import *  # noqa: F403

from deploy.settings_production import *  # noqa: F403

DEBUG = False  # production's already; stated so no import order can change it

SUPPORT_CHAT = {
    **globals()["SUPPORT_CHAT"],  # the example's, or production's if it sets one
    "THROTTLE_RATES": {
        "support_chat_send": None,
        "support_chat": None,
        "support_chat_sync": None,
        "support_chat_read": None,
        "support_chat_presence": None,
    },
    "WS_FLOOD_LIMIT": 1_000_000,
    "WS_TOKEN_MAX_AGE": 86_400,
}

ROOT_URLCONF = "bench_urls"

# What run.py reports as "the differences from production", read from this module.
BENCH_DIFFERENCES = {
    "SUPPORT_CHAT['THROTTLE_RATES']": "every scope None (unlimited)",
    "SUPPORT_CHAT['WS_FLOOD_LIMIT']": "1,000,000 frames / 10 s (default 100)",
    "SUPPORT_CHAT['WS_TOKEN_MAX_AGE']": "86,400 s (default 60)",
    "ROOT_URLCONF": "bench_urls: the example's URLs + the REST floor under bench/floor/",
}
