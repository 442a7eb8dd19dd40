"""Keyset (cursor) pagination: page 1,000 costs what page 1 costs."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from ..conf import chat_settings


class _SettingsPageSize(CursorPagination):
    page_size_query_param = "page_size"
    max_page_size = 200
    setting = "HISTORY_PAGE_SIZE"

    def get_page_size(self, request: Request) -> int:
        self.page_size = getattr(chat_settings, self.setting)
        return super().get_page_size(request)  # type: ignore[no-any-return]


class HistoryPagination(_SettingsPageSize):
    """Newest first; ``next`` walks back to older messages."""

    ordering = "-id"


class CatchUpPagination(_SettingsPageSize):
    """Oldest first from ``?after=<id>``; ``next`` walks forward until caught up."""

    ordering = "id"


class ConversationPagination(_SettingsPageSize):
    setting = "INBOX_PAGE_SIZE"
    ordering = ("-last_message_at", "-id")
