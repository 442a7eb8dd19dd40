"""Production settings for a site with django-support-chat behind nginx: an example
fragment. Import it at the end of your settings module (after INSTALLED_APPS and the rest)::

    from deploy.settings_production import *  # noqa: F403  (or copy the lines you need)

Everything comes from the environment (the systemd units read /etc/support-chat.env):

    SECRET_KEY            required
    ALLOWED_HOSTS         comma-separated host names, e.g. chat.example.com
    CSRF_TRUSTED_ORIGINS  comma-separated origins with scheme, e.g. https://chat.example.com
    DATABASE_URL          postgres://user:password@host:5432/name
    DATABASE_POOL_MAX_SIZE  connections per worker process in Django's pool (10)
    DATABASE_POOL_MIN_SIZE  connections the pool keeps open when idle (2)
    DATABASE_POOL_TIMEOUT   seconds a request waits for a free connection (5)
    REDIS_URL             redis://host:6379/0 (channel layer, presence, rate limits)
    STATIC_ROOT           where `manage.py collectstatic` puts the files nginx serves
    DJANGO_SECURE_COOKIES "1" (default): cookies only over HTTPS. "0" only for a plain-HTTP
                          test setup (the suite's nginx test on 127.0.0.1).

tests/e2e/nginx_settings.py uses this file as it is (tests/e2e/test_nginx_topology.py).
"""

from __future__ import annotations

import os

import dj_database_url

DEBUG = False
SECRET_KEY = os.environ["SECRET_KEY"]
ALLOWED_HOSTS = [h.strip() for h in os.environ["ALLOWED_HOSTS"].split(",") if h.strip()]
# Origins allowed to POST (the REST API, the inbox's forms). Django compares the Origin
# header with the Host nginx passes on (proxy_set_header Host $http_host), so this is
# needed only for other origins or when nginx rewrites Host; listing the site does no harm.
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# nginx sets X-Forwarded-Proto: request.is_secure() is true for HTTPS browsers, so Django
# builds https:// URLs and the CSRF Origin check expects https://.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False  # nginx passes the browser's Host as it is

_SECURE_COOKIES = os.environ.get("DJANGO_SECURE_COOKIES", "1") == "1"
SESSION_COOKIE_SECURE = _SECURE_COOKIES
CSRF_COOKIE_SECURE = _SECURE_COOKIES

DATABASES = {
    "default": dj_database_url.parse(
        os.environ["DATABASE_URL"],
        # No persistent connections under ASGI: each request runs in a thread of its own, so
        # they would pile up one per thread until PostgreSQL refuses clients (check
        # support_chat.W006). The pool below replaces them.
        conn_max_age=0,
        conn_health_checks=True,  # the pool checks a connection before handing it out
    )
}
# Django's psycopg connection pool (Django 5.1+, psycopg[pool]), one per worker process.
# Sizes: docs/operations.md, "Sizing". Workers x max_size (+ the db_worker's and your other
# clients' connections) must stay below PostgreSQL's max_connections (100 by default). A
# request that waits longer than `timeout` for a connection fails at once (OperationalError)
# instead of queueing behind the others.
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": int(os.environ.get("DATABASE_POOL_MIN_SIZE", "2")),
    "max_size": int(os.environ.get("DATABASE_POOL_MAX_SIZE", "10")),
    "timeout": float(os.environ.get("DATABASE_POOL_TIMEOUT", "5")),
}

_REDIS_URL = os.environ["REDIS_URL"]
# Every worker reaches every socket through Redis: several uvicorn processes need it.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": _REDIS_URL}]},
    }
}
# Rate limits are shared between the workers through the cache (check support_chat.W005).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS_URL}
}

# Delayed emails: django-tasks-db keeps the jobs in the database and
# deploy/systemd/support-chat-worker.service runs `manage.py db_worker`.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

STATIC_URL = "/static/"
STATIC_ROOT = os.environ["STATIC_ROOT"]  # served by nginx: `location /static/ { alias ...; }`
