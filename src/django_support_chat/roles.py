"""Who may do what: the one place that decides staff and admin roles."""

from __future__ import annotations

from typing import Any

from .conf import chat_settings


def default_is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def default_is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def is_staff(user: Any) -> bool:
    """True when ``user`` may work the inbox (admins always may)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(chat_settings.STAFF_PREDICATE(user)) or is_admin(user)


def is_admin(user: Any) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(chat_settings.ADMIN_PREDICATE(user))


def can_access_conversation(user: Any, conversation: Any) -> bool:
    """A customer sees their own conversations; staff see every conversation."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return conversation.customer_id == user.pk or is_staff(user)


def uses_default_predicates() -> bool:
    """True when staff and admin are decided by ``is_staff`` / ``is_superuser`` alone."""
    return (
        chat_settings.STAFF_PREDICATE is default_is_staff
        and chat_settings.ADMIN_PREDICATE is default_is_admin
    )
