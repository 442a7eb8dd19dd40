"""Django system checks for misconfiguration. Every id is listed in docs/checks.md."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import _IMPORT_STRINGS, _NESTED, DEFAULTS, SETTINGS_NAME

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")
_POSITIVE_INTS = (
    "MAX_MESSAGE_LENGTH",
    "PRESENCE_TTL",
    "HEARTBEAT_INTERVAL",
    "TYPING_TIMEOUT",
    "HISTORY_PAGE_SIZE",
    "INBOX_PAGE_SIZE",
    "WS_MAX_FRAME_BYTES",
    "WS_FLOOD_LIMIT",
    "TYPING_RATE",
    "WS_TOKEN_MAX_AGE",
    "WS_MAX_SOCKETS_PER_USER",
    "PRESENCE_REDIS_MAX_CONNECTIONS",
    "EMAIL_DELAY",
)
_IN_MEMORY = "channels.layers.InMemoryChannelLayer"
_LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


@register(Tags.compatibility)
def check_dependencies(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    if not apps.is_installed("channels") and not apps.is_installed("daphne"):
        errors.append(
            Error(
                "'channels' is not in INSTALLED_APPS.",
                hint="Add 'channels' (or 'daphne', which brings it) to INSTALLED_APPS.",
                id="support_chat.E001",
            )
        )
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not layers or "default" not in layers:
        errors.append(
            Error(
                "CHANNEL_LAYERS has no 'default' layer; realtime events cannot be delivered.",
                hint="Configure channels_redis.pubsub.RedisPubSubChannelLayer "
                "(or InMemoryChannelLayer for development). See docs/installation.md.",
                id="support_chat.E002",
            )
        )
    if not getattr(settings, "ASGI_APPLICATION", None):
        errors.append(
            Error(
                "ASGI_APPLICATION is not set; the chat's WebSocket routes cannot be served.",
                hint="Set ASGI_APPLICATION = 'yourproject.asgi.application'.",
                id="support_chat.E003",
            )
        )
    if not apps.is_installed("rest_framework"):
        errors.append(
            Error(
                "'rest_framework' is not in INSTALLED_APPS.",
                hint="Add 'rest_framework' to INSTALLED_APPS.",
                id="support_chat.E005",
            )
        )
    if layers and layers.get("default", {}).get("BACKEND") == _IN_MEMORY and not settings.DEBUG:
        errors.append(
            Warning(
                "The in-memory channel layer is used with DEBUG=False.",
                hint="It only works inside one process: with several workers, users miss "
                "messages. Use channels_redis in production.",
                id="support_chat.W001",
            )
        )
    backend = (layers or {}).get("default", {}).get("BACKEND", "")
    cache = getattr(settings, "CACHES", {}).get("default", {}).get("BACKEND", _LOCMEM)
    if backend.startswith("channels_redis") and cache == _LOCMEM:
        errors.append(
            Warning(
                "The default cache is the per-process LocMemCache while the channel layer "
                "is Redis (several workers).",
                hint="The rate limits are counted in the cache: each worker would count on "
                "its own, so a user gets N times the limit. Use a shared cache (Redis, "
                "Memcached, database). See docs/installation.md.",
                id="support_chat.W005",
            )
        )
    return errors


@register(Tags.async_support)
def check_persistent_connections(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Persistent connections under ASGI: each request's sync code runs in a thread of its
    own, and every thread keeps its own connection, so they pile up until the database
    refuses clients (Django's documentation: "Persistent connections" under ASGI)."""
    if not getattr(settings, "ASGI_APPLICATION", None):
        return []
    warnings: list[Any] = []
    for alias, database in (getattr(settings, "DATABASES", None) or {}).items():
        max_age = database.get("CONN_MAX_AGE", 0)  # Django's default: close after each request
        if max_age == 0:
            continue
        shown = "None (unlimited)" if max_age is None else repr(max_age)
        warnings.append(
            Warning(
                f"DATABASES[{alias!r}] keeps persistent connections (CONN_MAX_AGE = {shown}) "
                "under ASGI: each request thread keeps a connection of its own, and they "
                "pile up until the database refuses clients.",
                hint="Set CONN_MAX_AGE = 0 and, on PostgreSQL, use Django's connection "
                'pool: OPTIONS["pool"] = {"min_size": 2, "max_size": 10, "timeout": 5} '
                "(psycopg[pool]). See docs/operations.md (Sizing).",
                id="support_chat.W006",
            )
        )
    return warnings


@register(Tags.staticfiles)
def check_static_files(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The widget's loader.js and CSS come from the static files. Only what is certain is
    reported: whether a server (WhiteNoise, nginx, a CDN) serves them cannot be seen here."""
    warnings: list[Any] = []
    if not apps.is_installed("django.contrib.staticfiles"):
        warnings.append(
            Warning(
                "'django.contrib.staticfiles' is not in INSTALLED_APPS; collectstatic does "
                "not collect the chat widget's files, so the widget does not work.",
                hint="Add 'django.contrib.staticfiles' to INSTALLED_APPS and run "
                "collectstatic. See docs/installation.md (Static files).",
                id="support_chat.W003",
            )
        )
    if not getattr(settings, "STATIC_URL", None):
        warnings.append(
            Warning(
                "STATIC_URL is not set; the chat widget's script and styles have no URL.",
                hint="Set STATIC_URL (e.g. 'static/') and serve STATIC_ROOT there. See "
                "docs/installation.md (Static files).",
                id="support_chat.W004",
            )
        )
    return warnings


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    user = getattr(settings, SETTINGS_NAME, None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [
            Error(
                f"{SETTINGS_NAME} must be a dict, not {type(user).__name__}.",
                id="support_chat.E004",
            )
        ]
    errors: list[Any] = []

    def bad(key: str, problem: str, hint: str | None = None) -> None:
        errors.append(
            Error(f"{SETTINGS_NAME}[{key!r}] {problem}", hint=hint, id="support_chat.E004")
        )

    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Warning(
                f"Unknown {SETTINGS_NAME} key {key!r}; it is ignored.",
                hint="Known keys are listed in docs/settings.md.",
                id="support_chat.W002",
            )
        )
    for key in _POSITIVE_INTS:
        if key in user and (
            not isinstance(user[key], int) or isinstance(user[key], bool) or user[key] < 1
        ):
            bad(key, f"must be a positive integer, not {user[key]!r}.")
    threads = user.get("WS_DATABASE_THREADS")
    if threads is not None and (
        not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
    ):
        bad("WS_DATABASE_THREADS", f"must be a positive integer or None, not {threads!r}.")
    max_lag = user.get("SEND_MAX_LAG")
    if max_lag is not None and (
        isinstance(max_lag, bool) or not isinstance(max_lag, (int, float)) or max_lag <= 0
    ):
        bad("SEND_MAX_LAG", f"must be a positive number of seconds or None, not {max_lag!r}.")
    timeout = user.get("HEALTH_TIMEOUT", 1)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        bad("HEALTH_TIMEOUT", f"must be a positive number of seconds, not {timeout!r}.")
    for key in _NESTED:
        if key in user and not isinstance(user[key], dict):
            bad(key, f"must be a dict, not {type(user[key]).__name__}.")
    rates = user.get("THROTTLE_RATES")
    for scope, rate in (rates if isinstance(rates, dict) else {}).items():
        if rate is not None and not (isinstance(rate, str) and _RATE.match(rate)):
            bad(
                "THROTTLE_RATES",
                f"has an invalid rate {rate!r} for scope {scope!r}.",
                hint="Use '<number>/<second|minute|hour|day>', or None to disable.",
            )
    for key in _IMPORT_STRINGS:
        if key in user:
            value = user[key]
            if isinstance(value, str):
                try:
                    value = import_string(value)
                except ImportError as exc:
                    bad(key, f"cannot be imported: {exc}")
                    continue
            if not callable(value):
                bad(key, "must be a callable or the dotted path to one.")
    networks = user.get("METRICS_ALLOWED", [])
    if isinstance(networks, str) or not isinstance(networks, (list, tuple)):
        bad("METRICS_ALLOWED", f"must be a list of IP networks, not {networks!r}.")
    else:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except (TypeError, ValueError):
                bad(
                    "METRICS_ALLOWED",
                    f"has {network!r}, which is not an IP network.",
                    hint='Write networks like "10.0.0.0/8" or "::1/128".',
                )
    token = user.get("METRICS_TOKEN")
    if token is not None and not (isinstance(token, str) and token):
        bad("METRICS_TOKEN", "must be a non-empty string or None.")
    if "ICONS" in user and user["ICONS"] not in ("svg", "fontawesome"):
        bad("ICONS", f"must be 'svg' or 'fontawesome', not {user['ICONS']!r}.")
    ttl = user.get("PRESENCE_TTL", DEFAULTS["PRESENCE_TTL"])
    beat = user.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"])
    if isinstance(ttl, int) and isinstance(beat, int) and ttl < 2 * beat:
        bad(
            "PRESENCE_TTL",
            f"({ttl}) must be at least twice HEARTBEAT_INTERVAL ({beat}), "
            "or users flicker offline between heartbeats.",
        )
    return errors


@register(Tags.models)
def check_user_model(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """CUSTOMER_SEARCH_FIELDS must name fields the user model has."""
    from .names import missing_search_fields

    user = getattr(settings, SETTINGS_NAME, None)
    fields = user.get("CUSTOMER_SEARCH_FIELDS") if isinstance(user, dict) else None
    if fields is None:
        return []
    if isinstance(fields, str) or not all(isinstance(field, str) for field in fields):
        return [
            Error(
                f"{SETTINGS_NAME}['CUSTOMER_SEARCH_FIELDS'] must be a list of field names.",
                hint="For example ['email', 'name'], or None to use the user model's own.",
                id="support_chat.E006",
            )
        ]
    missing = missing_search_fields(list(fields))
    if not missing:
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['CUSTOMER_SEARCH_FIELDS'] names fields the user model "
            f"{settings.AUTH_USER_MODEL} lacks: {', '.join(missing)}.",
            hint="Use fields of the user model (related fields as 'profile__company'), "
            "or None to use its USERNAME_FIELD, EMAIL_FIELD and name fields.",
            id="support_chat.E006",
        )
    ]


@register(Tags.compatibility)
def check_email_notifications(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Email to people who are not online: a tasks backend that defers, absolute links."""
    from . import compat
    from .conf import chat_settings

    rules = chat_settings.EMAIL_NOTIFICATIONS
    if not isinstance(rules, dict) or not rules.get("enabled", True):
        return []
    messages: list[Any] = []
    if not compat.TASKS_AVAILABLE:
        messages.append(
            Error(
                "Chat emails are on but Django's tasks framework is missing.",
                hint="Use Django 6.0+, or install the django-tasks backport on Django 5.2; "
                "or turn email off: SUPPORT_CHAT['EMAIL_NOTIFICATIONS'] = {'enabled': False}.",
                id="support_chat.E010",
            )
        )
    else:
        alias = chat_settings.EMAIL_TASK_BACKEND
        try:
            backend = compat.task_backends[alias]
        except Exception as exc:
            messages.append(
                Error(
                    f"SUPPORT_CHAT['EMAIL_TASK_BACKEND'] names the tasks backend {alias!r}, "
                    f"which cannot be loaded: {exc}",
                    hint="Add it to the TASKS setting, or point EMAIL_TASK_BACKEND at one "
                    "of its aliases.",
                    id="support_chat.E011",
                )
            )
        else:
            if not backend.supports_defer:
                messages.append(
                    Warning(
                        f"The tasks backend {alias!r} ({type(backend).__name__}) cannot run "
                        "a task later, so chat emails wait for the "
                        "support_chat_send_notifications command.",
                        hint="Use a backend that supports run_after (django-tasks-db's "
                        "DatabaseBackend, with `manage.py db_worker`), or run "
                        "`manage.py support_chat_send_notifications` every minute from cron.",
                        id="support_chat.W010",
                    )
                )
    if not chat_settings.EMAIL_BASE_URL and not apps.is_installed("django.contrib.sites"):
        messages.append(
            Warning(
                "Chat emails need absolute links, but SUPPORT_CHAT['EMAIL_BASE_URL'] is not "
                "set and django.contrib.sites is not installed; emails are skipped.",
                hint="Set SUPPORT_CHAT['EMAIL_BASE_URL'] = 'https://www.example.com'.",
                id="support_chat.W011",
            )
        )
    return messages


@register(Tags.urls)
def check_email_urls(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The unsubscribe page must be routed, or emails go without List-Unsubscribe."""
    from django.urls import NoReverseMatch, reverse

    from .conf import chat_settings

    rules = chat_settings.EMAIL_NOTIFICATIONS
    if not isinstance(rules, dict) or not rules.get("enabled", True):
        return []
    if not rules.get("builtin_email", True):
        return []
    try:
        reverse("support_chat_mail:unsubscribe", args=["x"])
    except NoReverseMatch:
        return [
            Warning(
                "The chat's email pages (django_support_chat.mail.urls) are not in the "
                "URLconf: chat emails go out without an unsubscribe link.",
                hint='Include django_support_chat.urls, or add path("chat/email/", '
                'include("django_support_chat.mail.urls")).',
                id="support_chat.W012",
            )
        ]
    except Exception:
        return []  # a broken URLconf is Django's own check to report
    return []
