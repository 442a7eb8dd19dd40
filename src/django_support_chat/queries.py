"""Inbox queries shared by the staff inbox pages and the REST API.

``filter_inbox`` applies the status / assignment / unread filters and the search;
``keyset_page`` cuts one page of the newest-activity-first list with a cursor (never
OFFSET, so the 100th page costs what the first does).

Search matches the customer's fields (``names.customer_search_fields()``: the user model's
login, email and name fields, or ``SUPPORT_CHAT["CUSTOMER_SEARCH_FIELDS"]``) and the text of
any message in the conversation. On PostgreSQL it is full-text search (every word of the
query must match the start of a word, so ``inv`` finds "invoice"); elsewhere it is a
portable case-insensitive substring match of every word.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from django.db import connections
from django.db.models import Exists, F, Func, OuterRef, Q, QuerySet, TextField, Value

from . import names
from .conf import chat_settings
from .models import Conversation, Message

ORDERING = ("-last_message_at", "-id")

# Search queries are cut to this many words; more add cost and hardly any precision.
MAX_SEARCH_WORDS = 8


def _customer_fields() -> list[str]:
    return [f"customer__{field}" for field in names.customer_search_fields()]


_WORD = re.compile(r"\w+")


def filter_inbox(
    user: Any,
    status: str | None = None,
    search: str | None = None,
    assigned: str | None = None,
    unread: bool | None = None,
) -> QuerySet[Conversation]:
    """Every conversation staff may see, narrowed by the given filters.

    ``status``: ``open`` / ``closed`` (anything else: both). ``assigned``: ``me``,
    ``none`` or a user id. ``unread``: only conversations with unread customer messages.
    """
    conversations = Conversation.objects.select_related("customer", "assigned_to", "last_message")
    if status in ("open", "closed"):
        conversations = conversations.filter(status=status)
    if assigned == "me":
        conversations = conversations.filter(assigned_to=user)
    elif assigned == "none":
        conversations = conversations.filter(assigned_to__isnull=True)
    elif assigned:
        conversations = conversations.filter(assigned_to_id=int(assigned))
    if unread:
        conversations = conversations.filter(unread_staff_count__gt=0)
    if search and search.strip():
        conversations = search_conversations(conversations, search)
    return conversations


def search_conversations(
    conversations: QuerySet[Conversation], search: str
) -> QuerySet[Conversation]:
    """Conversations whose customer or any message matches every word of ``search``."""
    words = _WORD.findall(search)[:MAX_SEARCH_WORDS]
    if not words:  # only punctuation: match it literally
        return _substring_search(conversations, [search.strip()])
    if connections[conversations.db].vendor == "postgresql":
        return _full_text_search(conversations, words)
    return _substring_search(conversations, words)


def _substring_search(
    conversations: QuerySet[Conversation], words: list[str]
) -> QuerySet[Conversation]:
    for word in words:
        match = Q()
        for field in _customer_fields():
            match |= Q(**{f"{field}__icontains": word})
        match |= Q(
            Exists(Message.objects.filter(conversation=OuterRef("pk"), text__icontains=word))
        )
        conversations = conversations.filter(match)
    return conversations


def _words_of(field: str) -> Func:
    """The field with every run of non-word characters turned into a space, so that
    e-mail addresses and URLs are searchable by their parts ("corp" in "a@corp.test")."""
    return Func(
        F(field),
        Value(r"\W+"),
        Value(" "),
        Value("g"),
        function="regexp_replace",
        output_field=TextField(),
    )


def _full_text_search(
    conversations: QuerySet[Conversation], words: list[str]
) -> QuerySet[Conversation]:
    from django.contrib.postgres.search import SearchQuery, SearchVector

    config = chat_settings.INBOX_SEARCH_CONFIG
    # Each word is made of \w characters only, so quoting it cannot break the tsquery.
    query = SearchQuery(
        " & ".join(f"'{word}':*" for word in words), search_type="raw", config=config
    )
    in_messages = Exists(
        Message.objects.filter(conversation=OuterRef("pk"))
        .alias(support_chat_document=SearchVector(_words_of("text"), config=config))
        .filter(support_chat_document=query)
    )
    fields = _customer_fields()
    if not fields:  # CUSTOMER_SEARCH_FIELDS = []: messages only
        return conversations.filter(in_messages)
    customer_document = SearchVector(*(_words_of(field) for field in fields), config=config)
    return conversations.alias(support_chat_document=customer_document).filter(
        Q(support_chat_document=query) | Q(in_messages)
    )


# Keyset pagination -------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CURSOR = re.compile(r"^(\d{1,20})_(\d{1,19})$")
_MAX_ID = 2**63 - 1


class InvalidCursor(ValueError):
    pass


def encode_cursor(conversation: Conversation) -> str:
    """Position just after ``conversation`` in the newest-activity-first order."""
    delta = conversation.last_message_at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}_{conversation.pk}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    match = _CURSOR.match(cursor)
    if match is None:
        raise InvalidCursor(cursor)
    pk = int(match[2])
    try:
        at = _EPOCH + timedelta(microseconds=int(match[1]))
    except OverflowError:
        raise InvalidCursor(cursor) from None
    if pk > _MAX_ID:
        raise InvalidCursor(cursor)
    return at, pk


def keyset_page(
    conversations: QuerySet[Conversation], cursor: str | None, size: int
) -> tuple[list[Conversation], str | None]:
    """One page of ``conversations`` after ``cursor`` and the cursor of the next page
    (None on the last page). Raises ``InvalidCursor`` for a cursor it did not make."""
    conversations = conversations.order_by(*ORDERING)
    if cursor:
        at, pk = decode_cursor(cursor)
        conversations = conversations.filter(
            Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=pk)
        )
    rows = list(conversations[: size + 1])
    next_cursor = encode_cursor(rows[size - 1]) if len(rows) > size else None
    return rows[:size], next_cursor
