"""Settings of the example site: a small Bootstrap site that adds django-support-chat.

Embedded defaults: SQLite and the in-memory channel layer. ``DATABASE_URL`` switches to
PostgreSQL (through Django's connection pool: ``DATABASE_POOL_MIN_SIZE``, ``_MAX_SIZE`` and
``_TIMEOUT``) and ``REDIS_URL`` to Redis (channels-redis' pub/sub layer and Redis presence).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")

INSTALLED_APPS = [
    "daphne",  # runserver serves ASGI (HTTP + WebSocket)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bootstrap",  # django-bootstrap-static: Bootstrap 5 files from pip
    "fontawesomefree",
    "rest_framework",
    "django_htmx",
    "channels",
    "django_support_chat",
    "django_tasks_db",  # the TASKS backend below: delayed chat emails (manage.py db_worker)
    "example",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "example.urls"
ASGI_APPLICATION = "example.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's psycopg connection pool, as in deploy/settings_production.py (sizes:
    # docs/operations.md, "Sizing"). Under ASGI every request runs in a thread of its own,
    # and persistent connections (CONN_MAX_AGE > 0) pile up one per thread until PostgreSQL
    # refuses clients (check support_chat.W006). The pool is per worker process: at most
    # max_size connections, and a request that waits longer than `timeout` seconds for one
    # fails at once with OperationalError instead of queueing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool requires it
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": int(os.environ.get("DATABASE_POOL_MIN_SIZE", "2")),
        "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "10")),
        "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "5")),
    }

if DATABASES["default"]["ENGINE"].endswith("sqlite3") and django.VERSION >= (5, 1):
    # Sockets and pages write at the same time (messages, read receipts). Take SQLite's
    # write lock when a transaction starts and wait for it, rather than failing with
    # "database is locked" when two deferred transactions both try to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 1000}]},
        }
    }
    # Several workers share the rate limits through the cache (check support_chat.W005).
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Password-reset mails and the like go to the console. Django 6.1 replaced EMAIL_BACKEND
# with MAILERS (EMAIL_BACKEND is deprecated there).
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# Delayed jobs (the chat's emails to people who are not online) go through Django's tasks
# framework; django-tasks-db keeps them in the database and `manage.py db_worker` runs them.
if django.VERSION < (6, 0):
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_tasks_db"), "django_tasks")  # backport
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "support@example.com")

SUPPORT_CHAT = {
    # Everything else keeps its documented default (docs/settings.md).
    # The staff inbox (/admin/chat/) inside the site's own staff dashboard layout.
    "INBOX_BASE_TEMPLATE": "example/dashboard.html",
    # Absolute links in the chat's emails.
    "EMAIL_BASE_URL": os.environ.get("SITE_URL", "http://127.0.0.1:8000"),
}
# Presence timing from the environment, for load tests (tests/realtime/test_storms.py):
# SUPPORT_CHAT_HEARTBEAT_INTERVAL and SUPPORT_CHAT_PRESENCE_TTL, whole seconds, and
# SUPPORT_CHAT_WS_MAX_SOCKETS_PER_USER (load tests open many sockets as one staff user),
# SUPPORT_CHAT_EMAIL_DELAY (the demo: emails to people who are away after a few seconds),
# SUPPORT_CHAT_WS_DATABASE_THREADS and SUPPORT_CHAT_SEND_QUEUE_LIMIT (benchmarks).
for _key in (
    "HEARTBEAT_INTERVAL",
    "PRESENCE_TTL",
    "WS_MAX_SOCKETS_PER_USER",
    "EMAIL_DELAY",
    "WS_DATABASE_THREADS",
    "SEND_QUEUE_LIMIT",
):
    if os.environ.get(f"SUPPORT_CHAT_{_key}"):
        SUPPORT_CHAT[_key] = int(os.environ[f"SUPPORT_CHAT_{_key}"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_support_chat": {"handlers": ["console"], "level": "INFO"}},
}
