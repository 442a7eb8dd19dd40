"""Inbox queries: filters, search (PostgreSQL full-text search or the portable fallback),
keyset pages, and the number of SQL queries the list costs (10 vs 500 conversations)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_support_chat import queries, services
from django_support_chat.models import Conversation, Message, Side

from .factories import ConversationFactory, UserFactory, send

POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def setup(customer, other_customer, staff, admin):
    carol = UserFactory(
        username="carol", first_name="Carol", last_name="Cole", email="carol@corp.test"
    )
    invoice = ConversationFactory(customer=customer)  # Alice Archer
    send(invoice, customer, "My invoice is wrong")
    services.assign(invoice, staff, staff)
    password = ConversationFactory(customer=other_customer)  # Bob Baker
    send(password, other_customer, "Password reset please")
    services.mark_read(password, staff)
    services.close(password, staff)
    shipping = ConversationFactory(customer=carol)
    send(shipping, carol, "Where is my parcel? See https://track.example.org/parcel/42")
    services.mark_read(shipping, admin)
    return {"invoice": invoice, "password": password, "shipping": shipping}


def names(setup, queryset) -> set[str]:
    by_pk = {c.pk: name for name, c in setup.items()}
    return {by_pk[c.pk] for c in queryset}


def search(setup, staff, text, **filters) -> set[str]:
    return names(setup, queries.filter_inbox(staff, search=text, **filters))


class TestSearch:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("alice", {"invoice"}),  # username
            ("Archer", {"invoice"}),  # last name
            ("BOB", {"password"}),  # first name, any case
            ("Carol Cole", {"shipping"}),  # full name: every word must match
            ("carol@corp.test", {"shipping"}),  # a whole e-mail address
            ("corp.test", {"shipping"}),  # its domain
            ("invoice", {"invoice"}),  # message text
            ("PARCEL", {"shipping"}),
            ("parcel invoice", set()),  # words from two conversations: no single match
            ("reset password", {"password"}),  # words in any order
            ("track.example.org", {"shipping"}),  # a URL in a message, by its parts
            ("nothing-matches", set()),
            ("", {"invoice", "password", "shipping"}),
            ("   ", {"invoice", "password", "shipping"}),
        ],
    )
    def test_matches_name_email_and_message_text(self, setup, staff, text, expected):
        assert search(setup, staff, text) == expected

    def test_prefixes_match_on_both_databases(self, setup, staff):
        assert search(setup, staff, "inv") == {"invoice"}
        assert search(setup, staff, "Arch") == {"invoice"}

    def test_word_inside_a_word(self, setup, staff):
        # The portable search matches substrings; full-text search matches word starts.
        expected = set() if POSTGRES else {"invoice"}
        assert search(setup, staff, "voice") == expected

    def test_combines_with_filters(self, setup, staff):
        assert search(setup, staff, "please", status="open") == set()
        assert search(setup, staff, "please", status="closed") == {"password"}
        assert search(setup, staff, "wrong", assigned="me") == {"invoice"}
        assert search(setup, staff, "parcel", unread=True) == set()

    def test_punctuation_only_is_a_literal_match(self, setup, staff, customer):
        conversation = Conversation.objects.get(pk=setup["invoice"].pk)
        send(conversation, customer, "?!")
        assert search(setup, staff, "?!") == {"invoice"}

    @pytest.mark.parametrize("text", ["'", "(", "\\", "%", "_", "&|!", ":*", "!!"])
    def test_operators_are_plain_characters(self, setup, staff, text):
        # No tsquery syntax error, no LIKE wildcard: these characters occur nowhere.
        assert search(setup, staff, text) == set()

    def test_operators_around_words_are_ignored(self, setup, staff):
        assert search(setup, staff, "parcel:*") == {"shipping"}
        assert search(setup, staff, "!invoice & (wrong)") == {"invoice"}

    def test_uses_full_text_search_on_postgresql_and_like_elsewhere(self, setup, staff):
        with CaptureQueriesContext(connection) as captured:
            list(queries.filter_inbox(staff, search="invoice"))
        sql = captured.captured_queries[-1]["sql"]
        if POSTGRES:
            assert "to_tsvector" in sql and "to_tsquery" in sql
            assert "LIKE" not in sql.upper()
        else:
            assert "to_tsvector" not in sql
            assert "LIKE" in sql.upper()

    @pytest.mark.postgres  # text search configurations exist on PostgreSQL only
    def test_postgresql_search_configuration_is_a_setting(
        self, setup, staff, other_customer, settings
    ):
        assert POSTGRES, "this test needs PostgreSQL (DATABASE_URL)"
        send(
            Conversation.objects.get(pk=setup["password"].pk), other_customer, "I keep resetting it"
        )
        assert search(setup, staff, "reset") == {"password"}  # "reset" is a prefix of both
        settings.SUPPORT_CHAT = {"INBOX_SEARCH_CONFIG": "english"}
        assert search(setup, staff, "resets") == {"password"}  # stemmed to "reset"
        settings.SUPPORT_CHAT = {"INBOX_SEARCH_CONFIG": "simple"}
        assert search(setup, staff, "resets") == set()


class TestKeysetPages:
    def test_walks_every_conversation_once_newest_first(self, db):
        now = timezone.now()
        conversations = [ConversationFactory() for _ in range(7)]
        # Two share a timestamp: the id breaks the tie.
        for index, conversation in enumerate(conversations):
            Conversation.objects.filter(pk=conversation.pk).update(
                last_message_at=now - timedelta(minutes=index // 2)
            )
        expected = list(
            Conversation.objects.order_by("-last_message_at", "-id").values_list("pk", flat=True)
        )
        seen, cursor = [], None
        for _ in range(10):
            page, cursor = queries.keyset_page(Conversation.objects.all(), cursor, 3)
            seen.extend(c.pk for c in page)
            if cursor is None:
                break
        assert seen == expected

    def test_cursor_round_trip(self, db):
        conversation = ConversationFactory()
        conversation.refresh_from_db()
        at, pk = queries.decode_cursor(queries.encode_cursor(conversation))
        assert (at, pk) == (conversation.last_message_at, conversation.pk)

    @pytest.mark.parametrize(
        "cursor",
        ["x", "1_", "_1", "1_2_3", "-1_2", "1_99999999999999999999", "9" * 20 + "_1", "1.5_2"],
    )
    def test_bad_cursor(self, db, cursor):
        with pytest.raises(queries.InvalidCursor):
            queries.keyset_page(Conversation.objects.all(), cursor, 3)

    def test_no_offset(self, db):
        ConversationFactory()
        cursor = "1700000000000000_5"
        with CaptureQueriesContext(connection) as captured:
            queries.keyset_page(Conversation.objects.all(), cursor, 3)
        assert "OFFSET" not in captured.captured_queries[-1]["sql"].upper()


# Query count: the list costs the same at 10 and at 500 conversations ---------------------


def make_conversations(count: int, staff) -> None:
    """``count`` conversations with a customer, a last message and some assignments, fast."""
    User = get_user_model()
    start = User.objects.count()
    users = User.objects.bulk_create(
        [
            User(
                username=f"bulk{start + i}",
                first_name=f"First{i}",
                last_name="Bulk",
                email=f"b{i}@x.test",
            )
            for i in range(count)
        ]
    )
    now = timezone.now()
    conversations = Conversation.objects.bulk_create(
        [
            Conversation(
                customer=user,
                assigned_to=staff if i % 3 == 0 else None,
                status="closed" if i % 5 == 0 else "open",
                unread_staff_count=i % 2,
                last_message_at=now - timedelta(seconds=i),
            )
            for i, user in enumerate(users)
        ]
    )
    if conversations[0].pk is None:  # backends without RETURNING on bulk_create
        conversations = list(Conversation.objects.filter(customer__in=users).order_by("id"))
    messages = Message.objects.bulk_create(
        [
            Message(
                conversation=c,
                sender=c.customer,
                sender_side=Side.USER,
                text=f"Question number {c.pk}",
                client_id=uuid.uuid4(),
                created_at=c.last_message_at,
                seq=1,
            )
            for c in conversations
        ]
    )
    if messages[0].pk is None:
        messages = list(Message.objects.filter(conversation__in=conversations).order_by("id"))
    by_conversation = {m.conversation_id: m for m in messages}
    for c in conversations:
        c.last_message = by_conversation[c.pk]
        c.last_seq = 1
    Conversation.objects.bulk_update(conversations, ["last_message", "last_seq"], batch_size=200)


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/chat/",
        "/admin/chat/?filter=unread",
        "/admin/chat/?filter=mine&q=question",
        "/admin/chat/rows/",
    ],
)
def test_list_query_count_does_not_grow_with_conversations(staff, db, url):
    client = Client()
    client.force_login(staff)
    make_conversations(10, staff)
    at_10 = count_queries(client, url)
    make_conversations(490, staff)
    assert Conversation.objects.count() == 500
    at_500 = count_queries(client, url)
    assert at_10 == at_500, (at_10, at_500)
    # session + user + staff for the assignment menus + one page of conversations, and on
    # the page the alerts' state: the staff member's preferences + the unread counts
    assert at_500 <= (4 if url.startswith("/admin/chat/rows/") else 6)


def test_open_conversation_query_count_is_constant(staff, db):
    client = Client()
    client.force_login(staff)
    make_conversations(10, staff)
    first = Conversation.objects.order_by("pk").first()
    at_10 = count_queries(client, f"/admin/chat/{first.pk}/")
    make_conversations(490, staff)
    for _ in range(60):  # and a long history: one page of it is shown
        send(first, first.customer, "more")
    services.mark_read(first, staff)
    at_500 = count_queries(client, f"/admin/chat/{first.pk}/")
    assert at_10 == at_500, (at_10, at_500)
    assert at_500 <= 8  # 6, and the alerts' state (preferences, unread counts)
