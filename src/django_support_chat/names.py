"""How people are named and found: the one place that reads the host's user model.

Nothing else in the package assumes ``username``, ``first_name``, ``last_name``, ``email``
or ``get_full_name()``. Names come from two hooks, ``SUPPORT_CHAT["CUSTOMER_DISPLAY_NAME"]``
and ``SUPPORT_CHAT["STAFF_DISPLAY_NAME"]`` (dotted paths to ``(user) -> str``); search
fields come from the user model or ``SUPPORT_CHAT["CUSTOMER_SEARCH_FIELDS"]``.

What customers see of a staff member is ``staff_name``: never a login or an email address
unless the host's hook returns one. A hook that raises or returns nothing is logged and
replaced by a safe fallback, so a name can never fail a request or a state change.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist

from .conf import chat_settings

logger = logging.getLogger("django_support_chat.names")

# Name fields looked for on the user model, in order of preference.
NAME_FIELDS = ("full_name", "name", "display_name", "first_name", "last_name")


def _clean(value: Any) -> str:
    """``value`` as a display string; "" for None, blanks and the text "None"."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return "" if text in ("None", "None None") else text


def _field_value(user: Any, name: str) -> str:
    try:
        user._meta.get_field(name)
    except (FieldDoesNotExist, AttributeError):
        return ""
    return _clean(getattr(user, name, None))


def personal_name(user: Any) -> str:
    """The person's real name if the model has one and it is set, else ""."""
    get_full_name = getattr(user, "get_full_name", None)
    if callable(get_full_name):
        try:
            full = _clean(get_full_name())
        except Exception:
            logger.exception("get_full_name() failed for user %s", getattr(user, "pk", None))
            full = ""
        if full:
            return full
    for field in ("full_name", "name", "display_name"):
        value = _field_value(user, field)
        if value:
            return value
    return " ".join(v for v in (_field_value(user, f) for f in ("first_name", "last_name")) if v)


def _login(user: Any) -> str:
    get_username = getattr(user, "get_username", None)
    try:
        login = get_username() if callable(get_username) else ""
    except Exception:
        login = ""
    return _clean(login)


def default_customer_display_name(user: Any) -> str:
    """Full name when set, else the login field's value (often the email address)."""
    return personal_name(user) or _login(user) or _user_fallback(user)


def default_staff_display_name(user: Any) -> str:
    """Full (or first) name when set, else the team name: never the login or email."""
    return personal_name(user) or team_name()


def team_name() -> str:
    return _clean(chat_settings.WIDGET_TEXTS.get("title")) or "Support"


def _user_fallback(user: Any) -> str:
    pk = getattr(user, "pk", None)
    return f"User {pk}" if pk is not None else "User"


def _call_hook(setting: str, user: Any, fallback: Any) -> str:
    try:
        hook = getattr(chat_settings, setting)
        name = _clean(hook(user))
    except Exception:
        logger.exception(
            "SUPPORT_CHAT[%r] failed for user %s; using the default name",
            setting,
            getattr(user, "pk", None),
        )
        name = ""
    if name:
        return name
    try:
        return fallback(user)
    except Exception:  # the defaults only fail on a broken user object
        logger.exception("Default display name failed for user %s", getattr(user, "pk", None))
        return team_name() if fallback is default_staff_display_name else _user_fallback(user)


def customer_name(user: Any) -> str:
    """How a customer is shown (to staff, and to the customer themself). Never blank."""
    if user is None:
        return ""
    return _call_hook("CUSTOMER_DISPLAY_NAME", user, default_customer_display_name)


def staff_name(user: Any) -> str:
    """How a staff member is shown to customers (and in every realtime payload). Never blank."""
    if user is None:
        return ""
    return _call_hook("STAFF_DISPLAY_NAME", user, default_staff_display_name)


def staff_label(user: Any) -> str:
    """How a staff member is shown to other staff (assignment menus): the public name, or
    the login when the public name is only the team name, so colleagues can be told apart."""
    if user is None:
        return ""
    name = staff_name(user)
    if name == team_name():
        return _login(user) or name
    return name


def active_users() -> Any:
    """The user model's users, without the deactivated ones when the model has
    ``is_active`` as a field (``AbstractBaseUser`` alone only has a constant)."""
    User = get_user_model()
    users = User._default_manager.all()
    try:
        User._meta.get_field("is_active")
    except FieldDoesNotExist:
        return users
    return users.filter(is_active=True)


# Search -------------------------------------------------------------------------------------


def model_search_fields() -> list[str]:
    """Text fields of the user model worth searching: the login field, the email field and
    the name fields the model really has."""
    User = get_user_model()
    candidates = [User.USERNAME_FIELD, getattr(User, "EMAIL_FIELD", None), *NAME_FIELDS]
    fields: list[str] = []
    for name in candidates:
        if not name or name in fields:
            continue
        try:
            field = User._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if field.get_internal_type() in ("CharField", "EmailField", "TextField", "SlugField"):
            fields.append(name)
    return fields


def customer_search_fields() -> list[str]:
    """User fields the inbox search and the admin match (``CUSTOMER_SEARCH_FIELDS``, else
    ``model_search_fields()``)."""
    configured = chat_settings.CUSTOMER_SEARCH_FIELDS
    if configured is not None:
        return list(configured)
    return model_search_fields()


def missing_search_fields(fields: list[str]) -> list[str]:
    """The entries of ``fields`` the user model lacks (``a__b`` lookups are followed)."""
    User = get_user_model()
    missing = []
    for path in fields:
        model: Any = User
        for part in path.split("__"):
            try:
                field = model._meta.get_field(part)
            except (FieldDoesNotExist, AttributeError):
                missing.append(path)
                break
            model = field.related_model
    return missing
