"""Django system checks for misconfiguration. Every id is listed in docs/checks.md."""

from __future__ import annotations

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
    "PRESENCE_REDIS_MAX_CONNECTIONS",
)
_IN_MEMORY = "channels.layers.InMemoryChannelLayer"


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
    return errors


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
