"""Staff predicates a host project might configure, referenced by dotted path in tests."""

from __future__ import annotations

from typing import Any

SUPPORT_DESK = "tests.predicates.support_desk"


def support_desk(user: Any) -> bool:
    """Staff are the people with a support-desk email address, whatever ``is_staff`` says."""
    return user.email.endswith("@support.example.com")


NOT_CALLABLE = 42
