"""Keyset (cursor) pagination: page 1,000 costs what page 1 costs.

The cursor is opaque but not trusted: DRF decodes it and would hand its position to the
database as it is (``id < 'xxx'`` is a 500). ``decode_cursor`` converts the position to
the ordering field's type and answers 404 ``Invalid cursor`` for anything that is not a
position this pagination could have made.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from ..conf import chat_settings

# Signed 64-bit: the widest integer column (BigAutoField) any database holds.
_MIN_INT, _MAX_INT = -(2**63), 2**63 - 1


class _SettingsPageSize(CursorPagination):
    page_size_query_param = "page_size"
    max_page_size = 200
    setting = "HISTORY_PAGE_SIZE"

    def get_page_size(self, request: Request) -> int:
        """``?page_size=`` (more than ``max_page_size`` counts as the maximum). Anything but
        a positive integer is a 400, as the schema says, not silently the default size."""
        self.page_size = getattr(chat_settings, self.setting)
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":  # absent or empty: not set, like every optional query parameter
            return self.page_size  # type: ignore[no-any-return]
        digits = raw.lstrip("0")
        if not (raw.isascii() and raw.isdigit()) or not digits:
            raise ValidationError({"page_size": [_("A positive integer is required.")]})
        if len(digits) > 6:  # past any maximum, and never int() of a 10,000-digit string
            return self.max_page_size
        return min(int(digits), self.max_page_size)

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)  # type: ignore[no-any-return]

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        return cursor._replace(position=self._position(cursor.position))

    def _position(self, raw: str) -> Any:
        """The cursor's position as a value of the ordering field, or 404."""
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            value = field.to_python(raw)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            value = None
        if isinstance(value, bool) or value is None:
            raise NotFound(self.invalid_cursor_message)
        if isinstance(field, models.DateTimeField):
            # The positions made here are aware; a naive one, or one whose offset puts it
            # outside the years a datetime can hold in UTC, is no cursor of ours.
            try:
                if value.utcoffset() is None:
                    raise ValueError
                value = value.astimezone(timezone.utc)
            except (ValueError, OverflowError):
                raise NotFound(self.invalid_cursor_message) from None
        elif isinstance(value, int) and not _MIN_INT <= value <= _MAX_INT:
            raise NotFound(self.invalid_cursor_message)
        return value


class HistoryPagination(_SettingsPageSize):
    """Newest first; ``next`` walks back to older messages."""

    ordering = "-id"


class CatchUpPagination(_SettingsPageSize):
    """Oldest first from ``?after=<id>``; ``next`` walks forward until caught up."""

    ordering = "id"


class CatchUpBySeqPagination(_SettingsPageSize):
    """Oldest first from ``?after_seq=<seq>`` (fills a hole in the sequence numbers);
    ``next`` walks forward until caught up."""

    ordering = ("seq",)


class ConversationPagination(_SettingsPageSize):
    setting = "INBOX_PAGE_SIZE"
    ordering = ("-last_message_at", "-id")


class NotificationPagination(_SettingsPageSize):
    """The caller's notifications, newest first (``HISTORY_PAGE_SIZE`` per page)."""

    ordering = ("-created_at", "-id")
