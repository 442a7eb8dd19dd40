"""REST API integration at the example project's mount point, through the real session auth
stack (``force_login`` + ``APIClient``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import override_settings

from django_support_chat import services
from django_support_chat.models import AuditEntry, Conversation, Message, Notification, Side

from .conftest import API
from .factories import ConversationFactory, MessageFactory, UserFactory, send
from .htmlcheck import assert_inert, parse

pytestmark = pytest.mark.django_db


def conversation_url(pk: int, action: str = "") -> str:
    return f"{API}conversations/{pk}/{action}"


def messages_url(pk: int) -> str:
    return conversation_url(pk, "messages/")


def post_message(client: Any, pk: int, text: Any = "hello", client_id: Any = None) -> Any:
    payload = {"text": text, "client_id": str(client_id or uuid.uuid4())}
    return client.post(messages_url(pk), payload, format="json")


def fresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def walk(client: Any, url: str) -> list[list[dict[str, Any]]]:
    """Follow ``next`` links from ``url``; the pages' results."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json()["results"])
        url = response.json()["next"]
        assert len(pages) < 100, "next links never end"
    return pages


# Conversations -------------------------------------------------------------------------


class TestConversationList:
    def test_first_get_creates_the_conversation_once(self, customer, customer_api):
        response = customer_api.get(f"{API}conversations/")
        assert response.status_code == 200
        [row] = response.json()["results"]
        assert row["customer"] == {"id": customer.pk, "name": "Alice Archer"}
        assert row["status"] == "open"
        assert row["unread_count"] == 0
        assert row["last_message"] is None

        again = customer_api.get(f"{API}conversations/")
        assert [r["id"] for r in again.json()["results"]] == [row["id"]]
        assert Conversation.objects.filter(customer=customer).count() == 1

    def test_lists_only_own_conversations_newest_first(
        self, customer, other_customer, customer_api
    ):
        older = ConversationFactory(customer=customer)
        newer = ConversationFactory(customer=customer)
        ConversationFactory(customer=other_customer)
        send(older, customer, "bump")  # older now has the latest activity
        response = customer_api.get(f"{API}conversations/")
        assert [r["id"] for r in response.json()["results"]] == [older.pk, newer.pk]
        assert response.json()["results"][0]["last_message"]["text"] == "bump"

    def test_staff_list_is_their_own_not_the_inbox(self, staff, staff_api, conversation):
        response = staff_api.get(f"{API}conversations/")
        [row] = response.json()["results"]
        assert row["customer"]["id"] == staff.pk
        assert row["id"] != conversation.pk

    def test_detail(self, customer_api, conversation, customer, staff):
        send(conversation, customer, "hi")
        send(conversation, staff, "hello")
        response = customer_api.get(conversation_url(conversation.pk))
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == conversation.pk
        assert body["unread_count"] == 1  # as seen by the customer
        assert body["last_message"]["text"] == "hello"
        assert body["last_message"]["sender_side"] == "staff"

    def test_detail_unknown_id_is_404(self, staff_api):
        assert staff_api.get(conversation_url(987654)).status_code == 404


# Sending ---------------------------------------------------------------------------------


class TestSendMessage:
    def test_created(self, customer, customer_api, conversation):
        client_id = uuid.uuid4()
        response = post_message(customer_api, conversation.pk, "Hi, I need help", client_id)
        assert response.status_code == 201
        body = response.json()
        stored = Message.objects.get()
        assert body["id"] == stored.pk
        assert body["conversation"] == conversation.pk
        assert body["text"] == stored.text == "Hi, I need help"
        assert body["html"] == "Hi, I need help"
        assert body["client_id"] == str(client_id)
        assert body["sender"] == {"id": customer.pk, "name": "Alice Archer"}
        assert body["sender_side"] == "user"
        assert body["status"] == "sent"
        assert fresh(conversation).unread_staff_count == 1

    def test_text_trimmed_and_html_linkified(self, customer_api, conversation):
        response = post_message(customer_api, conversation.pk, "  see https://example.com  ")
        assert response.status_code == 201
        body = response.json()
        assert body["text"] == "see https://example.com"
        [link] = assert_inert(body["html"])
        assert link["href"] == "https://example.com"

    def test_resend_same_client_id_returns_stored_message(self, customer_api, conversation):
        client_id = uuid.uuid4()
        first = post_message(customer_api, conversation.pk, "once", client_id)
        again = post_message(customer_api, conversation.pk, "once", client_id)
        assert first.status_code == 201
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        assert Message.objects.count() == 1
        assert fresh(conversation).unread_staff_count == 1

    def test_staff_reply(self, staff, staff_api, conversation, customer):
        send(conversation, customer)
        response = post_message(staff_api, conversation.pk, "On it!")
        assert response.status_code == 201
        assert response.json()["sender_side"] == "staff"
        assert fresh(conversation).unread_user_count == 1

    def test_staff_reply_to_closed_conversation_is_409(self, staff, staff_api, conversation):
        services.close(conversation, staff)
        response = post_message(staff_api, conversation.pk, "too late")
        assert response.status_code == 409
        assert "detail" in response.json()
        assert not Message.objects.exists()

    def test_customer_message_reopens(self, staff, customer_api, conversation):
        services.close(conversation, staff)
        assert post_message(customer_api, conversation.pk).status_code == 201
        assert fresh(conversation).status == Conversation.Status.OPEN

    def test_html_never_live_markup(self, customer_api, staff_api, conversation):
        text = (
            "<script>alert(1)</script> <img src=x onerror=alert(1)> "
            '<a href="javascript:alert(1)">x</a> javascript:alert(2) https://ok.example.com/?a=1&b=2'
        )
        body = post_message(customer_api, conversation.pk, text).json()
        assert body["text"] == text  # stored exactly as written
        [link] = assert_inert(body["html"])
        assert link["href"] == "https://ok.example.com/?a=1&b=2"
        assert parse(body["html"])[1] == text  # shown exactly as written
        [row] = staff_api.get(messages_url(conversation.pk)).json()["results"]
        assert row["html"] == body["html"]


FIELD_ERRORS = {
    # case: (JSON payload, field that must carry the error)
    "empty": ({"text": ""}, "text"),
    "whitespace only": ({"text": "  \n\t "}, "text"),
    "over 5000 characters": ({"text": "a" * 5001}, "text"),
    "control character": ({"text": "ding\x07"}, "text"),
    "nul byte": ({"text": "a\x00b"}, "text"),
    "bidi override": ({"text": "abc\u202edef"}, "text"),
    "number": ({"text": 42}, "text"),
    "float": ({"text": 4.2}, "text"),
    "boolean": ({"text": True}, "text"),
    "list": ({"text": ["hi"]}, "text"),
    "object": ({"text": {"hi": 1}}, "text"),
    "null": ({"text": None}, "text"),
    "missing text": ({"text": ...}, "text"),
    "missing client_id": ({"client_id": ...}, "client_id"),
    "bad uuid": ({"client_id": "not-a-uuid"}, "client_id"),
    "uuid as list": ({"client_id": [str(uuid.uuid4())]}, "client_id"),
    "null client_id": ({"client_id": None}, "client_id"),
}


class TestSendValidation:
    @pytest.mark.parametrize("case", FIELD_ERRORS.values(), ids=FIELD_ERRORS.keys())
    def test_field_error_and_nothing_stored(self, customer_api, conversation, case):
        changes, field = case
        payload = {"text": "valid", "client_id": str(uuid.uuid4()), **changes}
        payload = {key: value for key, value in payload.items() if value is not ...}
        response = customer_api.post(messages_url(conversation.pk), payload, format="json")
        assert response.status_code == 400, response.content
        errors = response.json()
        assert field in errors, errors
        assert isinstance(errors[field], list) and errors[field]
        assert not Message.objects.exists()
        assert fresh(conversation).unread_staff_count == 0

    def test_exactly_5000_characters_accepted(self, customer_api, conversation):
        assert post_message(customer_api, conversation.pk, "a" * 5000).status_code == 201

    def test_lone_surrogate_rejected(self, customer_api, conversation):
        body = '{"text": "a\\ud800b", "client_id": "' + str(uuid.uuid4()) + '"}'
        response = customer_api.post(
            messages_url(conversation.pk), body, content_type="application/json"
        )
        assert response.status_code == 400
        assert "text" in response.json()
        assert not Message.objects.exists()

    @pytest.mark.parametrize(
        "body",
        ['{"text": "hi", "client_id": ', "{'text': 'hi'}", "not json at all", "\xff"],
        ids=["truncated", "single quotes", "plain text", "not utf-8"],
    )
    def test_malformed_json_is_400(self, customer_api, conversation, body):
        response = customer_api.post(
            messages_url(conversation.pk), body, content_type="application/json"
        )
        assert response.status_code == 400
        assert "detail" in response.json()
        assert not Message.objects.exists()

    @pytest.mark.parametrize("body", ["[1, 2]", "null", '"text"'])
    def test_json_that_is_not_an_object_is_400(self, customer_api, conversation, body):
        response = customer_api.post(
            messages_url(conversation.pk), body, content_type="application/json"
        )
        assert response.status_code == 400
        assert not Message.objects.exists()

    def test_form_encoded_body_is_415(self, customer_api, conversation):
        response = customer_api.post(
            messages_url(conversation.pk), {"text": "hi", "client_id": str(uuid.uuid4())}
        )
        assert response.status_code == 415
        assert not Message.objects.exists()

    @override_settings(SUPPORT_CHAT={"MAX_MESSAGE_LENGTH": 10})
    def test_length_limit_follows_settings(self, customer_api, conversation):
        assert post_message(customer_api, conversation.pk, "0123456789").status_code == 201
        response = post_message(customer_api, conversation.pk, "0123456789X")
        assert response.status_code == 400
        assert "text" in response.json()
        assert Message.objects.count() == 1


# History ---------------------------------------------------------------------------------


class TestHistory:
    @pytest.fixture
    def ids(self, conversation):
        messages = MessageFactory.create_batch(120, conversation=conversation)
        return [message.pk for message in messages]

    def test_cursor_pages_newest_first_without_gaps(self, customer_api, conversation, ids):
        pages = walk(customer_api, messages_url(conversation.pk))
        assert [len(page) for page in pages] == [50, 50, 20]
        seen = [row["id"] for page in pages for row in page]
        assert seen == sorted(ids, reverse=True)  # newest first, no duplicates, no gaps

    def test_previous_link_walks_back(self, customer_api, conversation, ids):
        first = customer_api.get(messages_url(conversation.pk)).json()
        second = customer_api.get(first["next"]).json()
        back = customer_api.get(second["previous"]).json()
        assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]

    def test_after_returns_newer_messages_oldest_first(self, customer_api, conversation, ids):
        pages = walk(customer_api, f"{messages_url(conversation.pk)}?after={ids[9]}")
        assert [len(page) for page in pages] == [50, 50, 10]
        assert [row["id"] for page in pages for row in page] == ids[10:]

    def test_after_newest_is_empty(self, customer_api, conversation, ids):
        body = customer_api.get(f"{messages_url(conversation.pk)}?after={ids[-1]}").json()
        assert body["results"] == []
        assert body["next"] is None

    def test_after_sees_messages_sent_later(self, customer_api, conversation, customer, ids):
        newer = send(conversation, customer, "late")
        body = customer_api.get(f"{messages_url(conversation.pk)}?after={ids[-1]}").json()
        assert [row["id"] for row in body["results"]] == [newer.pk]

    @pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e3"])
    def test_bad_after_is_400(self, customer_api, conversation, value):
        response = customer_api.get(f"{messages_url(conversation.pk)}?after={value}")
        assert response.status_code == 400
        assert "after" in response.json()

    def test_page_size_from_settings_and_query(self, customer_api, conversation, ids, settings):
        settings.SUPPORT_CHAT = {"HISTORY_PAGE_SIZE": 7}
        body = customer_api.get(messages_url(conversation.pk)).json()
        assert len(body["results"]) == 7
        body = customer_api.get(f"{messages_url(conversation.pk)}?page_size=500").json()
        assert len(body["results"]) == 120  # capped at 200

    def test_only_this_conversations_messages(self, customer_api, conversation, customer):
        own = send(conversation, customer, "mine")
        MessageFactory(conversation=ConversationFactory(customer=customer))
        body = customer_api.get(messages_url(conversation.pk)).json()
        assert [row["id"] for row in body["results"]] == [own.pk]

    def test_status_derived_from_watermarks(self, customer_api, staff, conversation, customer):
        message = send(conversation, customer, "hi")
        [row] = customer_api.get(messages_url(conversation.pk)).json()["results"]
        assert row["status"] == "sent"
        services.mark_delivered(conversation, staff, message.pk)
        [row] = customer_api.get(messages_url(conversation.pk)).json()["results"]
        assert row["status"] == "delivered"
        services.mark_read(conversation, staff)
        [row] = customer_api.get(messages_url(conversation.pk)).json()["results"]
        assert row["status"] == "read"


# Read and unread counts --------------------------------------------------------------------


def unread_count(client: Any) -> dict[str, int]:
    response = client.get(f"{API}unread_count")
    assert response.status_code == 200
    return response.json()


class TestReadAndUnread:
    def test_customer_transition(self, customer_api, staff, conversation, customer):
        send(conversation, customer, "question")
        assert unread_count(customer_api) == {"unread_count": 0}
        send(conversation, staff, "answer")
        assert unread_count(customer_api) == {"unread_count": 1}
        assert customer_api.get(conversation_url(conversation.pk)).json()["unread_count"] == 1

        response = customer_api.post(conversation_url(conversation.pk, "read"), format="json")
        assert response.status_code == 200
        assert response.json()["unread_count"] == 0
        assert unread_count(customer_api) == {"unread_count": 0}
        assert fresh(conversation).unread_user_count == 0

    def test_staff_transition(self, staff_api, conversation, customer):
        def inbox_row() -> dict[str, Any]:
            [row] = staff_api.get(f"{API}inbox/").json()["results"]
            return row

        assert inbox_row()["unread_count"] == 0
        send(conversation, customer, "hello?")
        assert inbox_row()["unread_count"] == 1
        assert unread_count(staff_api) == {"unread_count": 0, "staff_unread_conversations": 1}

        response = staff_api.post(conversation_url(conversation.pk, "read"), {}, format="json")
        assert response.status_code == 200
        assert response.json()["unread_count"] == 0
        assert inbox_row()["unread_count"] == 0
        assert unread_count(staff_api) == {"unread_count": 0, "staff_unread_conversations": 0}
        assert fresh(conversation).unread_staff_count == 0

    def test_read_up_to_id(self, staff_api, conversation, customer):
        messages = [send(conversation, customer, f"m{n}") for n in range(4)]
        response = staff_api.post(
            conversation_url(conversation.pk, "read"),
            {"up_to_id": messages[1].pk},
            format="json",
        )
        assert response.status_code == 200
        assert response.json()["unread_count"] == 2
        assert response.json()["staff_read_id"] == messages[1].pk

    @pytest.mark.parametrize("up_to_id", [-1, "x", 1.5, [1]])
    def test_bad_up_to_id_is_400(self, staff_api, conversation, customer, up_to_id):
        send(conversation, customer)
        response = staff_api.post(
            conversation_url(conversation.pk, "read"), {"up_to_id": up_to_id}, format="json"
        )
        assert response.status_code == 400
        assert "up_to_id" in response.json()
        assert fresh(conversation).unread_staff_count == 1

    def test_customer_counts_all_own_conversations(self, customer_api, customer, staff):
        for _ in range(2):
            conversation = ConversationFactory(customer=customer)
            send(conversation, staff, "one")
            send(conversation, staff, "two")
        assert unread_count(customer_api) == {"unread_count": 4}


# Inbox -------------------------------------------------------------------------------------


NOTIFICATIONS = f"{API}notifications/"


def notification_ids(client: Any) -> list[int]:
    return [n["id"] for page in walk(client, NOTIFICATIONS) for n in page]


def notification_unread(client: Any) -> int:
    response = client.get(f"{NOTIFICATIONS}unread_count")
    assert response.status_code == 200, response.content
    return response.json()["unread_count"]


def read_notifications(client: Any, body: Any) -> Any:
    return client.post(f"{NOTIFICATIONS}read", body, format="json")


class TestNotifications:
    def test_customer_list_newest_first(self, customer_api, customer, staff, conversation):
        reply = send(conversation, staff, "answer")
        services.close(conversation, staff)
        response = customer_api.get(NOTIFICATIONS)
        assert response.status_code == 200
        closed, received = response.json()["results"]
        assert closed["type"] == "conversation_closed"
        assert closed["conversation_id"] == conversation.pk
        assert closed["message_id"] is None
        assert closed["read"] is False
        assert received == {
            "id": received["id"],
            "type": "message_received",
            "conversation_id": conversation.pk,
            "message_id": reply.pk,
            "created_at": received["created_at"],
            "read": False,
            "emailed_at": None,
        }
        assert notification_unread(customer_api) == 2

    def test_paginated_without_gaps(self, customer_api, staff, conversation, settings):
        for n in range(7):
            send(conversation, staff, f"r{n}")
        settings.SUPPORT_CHAT = {"HISTORY_PAGE_SIZE": 3}
        pages = walk(customer_api, NOTIFICATIONS)
        assert [len(page) for page in pages] == [3, 3, 1]
        ids = [n["id"] for page in pages for n in page]
        assert ids == list(
            Notification.objects.order_by("-created_at", "-id").values_list("id", flat=True)
        )

    def test_staff_sees_assignment_and_reading_the_conversation_reads_it(
        self, staff_api, staff, admin, customer, conversation
    ):
        services.assign(conversation, admin, staff)
        send(conversation, customer, "hello")
        assert [n["type"] for n in staff_api.get(NOTIFICATIONS).json()["results"]] == [
            "message_received",
            "assignment",
        ]
        assert notification_unread(staff_api) == 2
        response = staff_api.post(conversation_url(conversation.pk, "read"), {}, format="json")
        assert response.status_code == 200
        assert notification_unread(staff_api) == 0
        assert all(n["read"] for n in staff_api.get(NOTIFICATIONS).json()["results"])

    def test_mark_read_by_ids_then_all_idempotent(self, customer_api, staff, conversation):
        for n in range(3):
            send(conversation, staff, f"r{n}")
        first = notification_ids(customer_api)[-1]
        response = read_notifications(customer_api, {"ids": [first]})
        assert response.status_code == 200
        assert response.json() == {"marked": 1, "unread_count": 2}
        again = read_notifications(customer_api, {"ids": [first]})
        assert again.json() == {"marked": 0, "unread_count": 2}
        assert read_notifications(customer_api, {"all": True}).json() == {
            "marked": 2,
            "unread_count": 0,
        }
        assert read_notifications(customer_api, {"all": True}).json() == {
            "marked": 0,
            "unread_count": 0,
        }

    def test_other_users_notifications_invisible_and_unchanged(
        self, customer_api, other_api, customer, other_customer, staff, conversation
    ):
        send(conversation, staff, "for alice")
        theirs = ConversationFactory(customer=other_customer)
        send(theirs, staff, "for bob")
        bob_note = Notification.objects.get(user=other_customer)
        alice_ids = notification_ids(customer_api)
        assert bob_note.pk not in alice_ids and len(alice_ids) == 1
        response = read_notifications(customer_api, {"ids": [bob_note.pk]})
        assert response.json() == {"marked": 0, "unread_count": 1}
        read_notifications(customer_api, {"all": True})
        assert Notification.objects.get(pk=bob_note.pk).read_at is None
        assert notification_unread(other_api) == 1
        # Another user's conversation: reading it is a 404 and reads nothing.
        response = customer_api.post(conversation_url(theirs.pk, "read"), {}, format="json")
        assert response.status_code == 404
        assert Notification.objects.get(pk=bob_note.pk).read_at is None

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "non_field_errors"),
            ({"ids": [1], "all": True}, "non_field_errors"),
            ({"all": False}, "all"),
            ({"all": None}, "all"),
            ({"ids": []}, "ids"),
            ({"ids": None}, "ids"),
            ({"ids": "1"}, "ids"),
            ({"ids": [0]}, "ids"),
            ({"ids": ["x"]}, "ids"),
            ({"ids": [2**63]}, "ids"),
            ({"ids": list(range(1, 502))}, "ids"),
        ],
    )
    def test_bad_body_is_400_and_changes_nothing(
        self, customer_api, staff, conversation, body, field
    ):
        send(conversation, staff, "r")
        response = read_notifications(customer_api, body)
        assert response.status_code == 400, response.content
        errors = response.json()
        assert list(errors) == [field]
        assert all(isinstance(message, str) for message in errors[field])
        assert notification_unread(customer_api) == 1

    def test_anonymous_is_refused(self, anon_api):
        assert anon_api.get(NOTIFICATIONS).status_code == 403
        assert anon_api.get(f"{NOTIFICATIONS}unread_count").status_code == 403
        assert read_notifications(anon_api, {"all": True}).status_code == 403

    def test_bad_cursor_is_404(self, customer_api):
        assert customer_api.get(f"{NOTIFICATIONS}?cursor=bogus").status_code == 404


class TestInbox:
    @pytest.fixture
    def setup(self, customer, other_customer, staff, admin):
        carol = UserFactory(username="carol", first_name="Carol", email="carol@corp.test")
        invoice = ConversationFactory(customer=customer)
        send(invoice, customer, "My invoice is wrong")
        services.assign(invoice, staff, staff)

        password = ConversationFactory(customer=other_customer)
        send(password, other_customer, "Password reset please")
        services.mark_read(password, staff)
        services.close(password, staff)

        shipping = ConversationFactory(customer=carol)
        send(shipping, carol, "Where is my parcel?")
        services.mark_read(shipping, admin)
        services.assign(shipping, admin, admin)
        return {"invoice": invoice, "password": password, "shipping": shipping}

    def query(self, client: Any, setup: dict[str, Conversation], params: str = "") -> set[str]:
        response = client.get(f"{API}inbox/?{params}")
        assert response.status_code == 200, response.content
        names = {conversation.pk: name for name, conversation in setup.items()}
        return {names[row["id"]] for row in response.json()["results"]}

    def test_everything_by_default_newest_first(self, staff_api, setup):
        rows = staff_api.get(f"{API}inbox/").json()["results"]
        assert [row["id"] for row in rows] == [
            setup["shipping"].pk,
            setup["password"].pk,
            setup["invoice"].pk,
        ]

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ("status=open", {"invoice", "shipping"}),
            ("status=closed", {"password"}),
            ("status=all", {"invoice", "password", "shipping"}),
            ("assigned=me", {"invoice"}),
            ("assigned=none", {"password"}),
            ("unread=1", {"invoice"}),
            ("unread=true", {"invoice"}),
            ("unread=0", {"invoice", "password", "shipping"}),
            ("search=alice", {"invoice"}),  # username
            ("search=ARCHER", {"invoice"}),  # last name, any case
            ("search=Bob", {"password"}),  # first name
            ("search=corp.test", {"shipping"}),  # email
            ("search=invoice", {"invoice"}),  # message text
            ("search=PARCEL", {"shipping"}),
            ("search=nothing-matches", set()),
            ("search=", {"invoice", "password", "shipping"}),  # an empty search box
            ("status=open&assigned=none", set()),
            ("status=open&search=please", set()),
        ],
    )
    def test_filters(self, staff_api, setup, params, expected):
        assert self.query(staff_api, setup, params) == expected

    def test_assigned_to_a_user_id(self, staff_api, setup, admin):
        assert self.query(staff_api, setup, f"assigned={admin.pk}") == {"shipping"}

    def test_assigned_me_for_admin(self, admin_api, setup):
        assert self.query(admin_api, setup, "assigned=me") == {"shipping"}

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ("status=pending", "status"),
            ("assigned=someone", "assigned"),
            ("assigned=-1", "assigned"),
            ("assigned=%C2%B2", "assigned"),  # "²" passes str.isdigit()
            ("assigned=" + "9" * 30, "assigned"),
            ("search=" + "x" * 201, "search"),
            ("search=a%00b", "search"),
        ],
    )
    def test_invalid_filter_is_400(self, staff_api, setup, params, field):
        response = staff_api.get(f"{API}inbox/?{params}")
        assert response.status_code == 400
        assert field in response.json()

    def test_rows_show_staff_side(self, staff_api, setup):
        rows = {row["id"]: row for row in staff_api.get(f"{API}inbox/").json()["results"]}
        invoice = rows[setup["invoice"].pk]
        assert invoice["unread_count"] == invoice["unread_staff_count"] == 1
        assert invoice["assigned_to"]["name"] == "Sam Support"
        assert invoice["last_message"]["text"] == "My invoice is wrong"

    def test_paginated(self, staff_api, setup, settings):
        settings.SUPPORT_CHAT = {"INBOX_PAGE_SIZE": 2}
        pages = walk(staff_api, f"{API}inbox/")
        assert [len(page) for page in pages] == [2, 1]
        assert len({row["id"] for page in pages for row in page}) == 3


# Staff actions -----------------------------------------------------------------------------


class TestAssign:
    def assign(self, client: Any, conversation: Conversation, payload: Any) -> Any:
        return client.post(conversation_url(conversation.pk, "assign"), payload, format="json")

    def test_assign_and_unassign(self, staff_api, staff, conversation):
        response = self.assign(staff_api, conversation, {"assignee": staff.pk})
        assert response.status_code == 200
        assert response.json()["assigned_to"] == {"id": staff.pk, "name": "Sam Support"}
        assert fresh(conversation).assigned_to == staff

        response = self.assign(staff_api, conversation, {"assignee": None})
        assert response.status_code == 200
        assert response.json()["assigned_to"] is None
        assert fresh(conversation).assigned_to is None

    def test_reassign_to_admin(self, staff_api, staff, admin, conversation):
        services.assign(conversation, staff, staff)
        response = self.assign(staff_api, conversation, {"assignee": admin.pk})
        assert response.json()["assigned_to"]["id"] == admin.pk
        assert fresh(conversation).assigned_to == admin

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param("customer", id="non-staff user"),
            pytest.param({"assignee": 987654}, id="unknown id"),
            pytest.param({}, id="missing key"),
            pytest.param({"assignee": "sam"}, id="username"),
            pytest.param({"assignee": True}, id="boolean"),
        ],
    )
    def test_bad_assignee_is_400(self, staff_api, customer, conversation, payload):
        if payload == "customer":
            payload = {"assignee": customer.pk}
        response = self.assign(staff_api, conversation, payload)
        assert response.status_code == 400
        assert "assignee" in response.json()
        assert fresh(conversation).assigned_to is None
        assert not AuditEntry.objects.exists()


class TestCloseReopen:
    def test_close_then_reopen(self, staff_api, conversation):
        response = staff_api.post(conversation_url(conversation.pk, "close"))
        assert response.status_code == 200
        assert response.json()["status"] == "closed"
        assert fresh(conversation).status == Conversation.Status.CLOSED

        response = staff_api.post(conversation_url(conversation.pk, "reopen"))
        assert response.status_code == 200
        assert response.json()["status"] == "open"
        assert fresh(conversation).status == Conversation.Status.OPEN

    def test_close_twice_is_harmless(self, staff_api, conversation):
        staff_api.post(conversation_url(conversation.pk, "close"))
        response = staff_api.post(conversation_url(conversation.pk, "close"))
        assert response.status_code == 200
        assert AuditEntry.objects.count() == 1

    def test_get_not_allowed(self, staff_api, conversation):
        assert staff_api.get(conversation_url(conversation.pk, "close")).status_code == 405
        assert fresh(conversation).status == Conversation.Status.OPEN


STAFF_ACTIONS = {
    # action: (how to call it, the audit action expected)
    "reply": (
        lambda api, c, staff: post_message(api, c.pk, "answer"),
        AuditEntry.Action.REPLY,
    ),
    "assign": (
        lambda api, c, staff: api.post(
            conversation_url(c.pk, "assign"), {"assignee": staff.pk}, format="json"
        ),
        AuditEntry.Action.ASSIGN,
    ),
    "unassign": (
        lambda api, c, staff: api.post(
            conversation_url(c.pk, "assign"), {"assignee": None}, format="json"
        ),
        AuditEntry.Action.UNASSIGN,
    ),
    "close": (
        lambda api, c, staff: api.post(conversation_url(c.pk, "close")),
        AuditEntry.Action.CLOSE,
    ),
    "reopen": (
        lambda api, c, staff: api.post(conversation_url(c.pk, "reopen")),
        AuditEntry.Action.REOPEN,
    ),
    "read": (
        lambda api, c, staff: api.post(conversation_url(c.pk, "read")),
        AuditEntry.Action.MARK_READ,
    ),
}


class TestAudit:
    @pytest.mark.parametrize("role", ["staff", "admin"])
    @pytest.mark.parametrize("action", STAFF_ACTIONS.keys())
    def test_each_staff_action_writes_one_entry(
        self, api_for, role, request, conversation, customer, action
    ):
        actor = request.getfixturevalue(role)
        do, expected = STAFF_ACTIONS[action]
        send(conversation, customer, "help")  # something to reply to and to read
        if action == "unassign":
            services.assign(conversation, actor, actor)
        if action == "reopen":
            services.close(conversation, actor)
        before = set(AuditEntry.objects.values_list("pk", flat=True))

        response = do(api_for(role), conversation, actor)
        assert response.status_code in (200, 201), response.content

        [entry] = AuditEntry.objects.exclude(pk__in=before)
        assert entry.action == expected
        assert entry.actor == actor
        assert entry.conversation == conversation

    def test_customer_actions_are_not_audited(self, customer_api, conversation, staff):
        send(conversation, staff, "hi")
        post_message(customer_api, conversation.pk, "thanks")
        customer_api.post(conversation_url(conversation.pk, "read"))
        assert not AuditEntry.objects.filter(actor__is_staff=False).exists()
        assert AuditEntry.objects.count() == 1  # the staff reply


# Throttling --------------------------------------------------------------------------------


class TestThrottling:
    @pytest.fixture(autouse=True)
    def _three_sends_per_minute(self):
        with override_settings(SUPPORT_CHAT={"THROTTLE_RATES": {"support_chat_send": "3/minute"}}):
            yield

    def test_fourth_send_is_429_and_stores_nothing(self, customer_api, conversation):
        for n in range(3):
            assert post_message(customer_api, conversation.pk, f"m{n}").status_code == 201
        response = post_message(customer_api, conversation.pk, "one too many")
        assert response.status_code == 429
        assert int(response["Retry-After"]) > 0
        assert Message.objects.count() == 3
        assert fresh(conversation).unread_staff_count == 3

    def test_limit_is_per_user(self, customer_api, staff_api, conversation):
        for _ in range(3):
            post_message(customer_api, conversation.pk)
        assert post_message(customer_api, conversation.pk).status_code == 429
        assert post_message(staff_api, conversation.pk).status_code == 201

    def test_reading_history_is_not_limited_by_the_send_rate(self, customer_api, conversation):
        for _ in range(4):
            post_message(customer_api, conversation.pk)
        for _ in range(5):
            assert customer_api.get(messages_url(conversation.pk)).status_code == 200

    @override_settings(SUPPORT_CHAT={"THROTTLE_RATES": {"support_chat_send": None}})
    def test_none_disables_the_scope(self, customer_api, conversation):
        for _ in range(5):
            assert post_message(customer_api, conversation.pk).status_code == 201

    @override_settings(SUPPORT_CHAT={"THROTTLE_RATES": {"support_chat": "2/minute"}})
    def test_default_scope(self, customer_api, conversation):
        for _ in range(2):
            assert customer_api.get(conversation_url(conversation.pk)).status_code == 200
        assert customer_api.get(conversation_url(conversation.pk)).status_code == 429


# OpenAPI schema ----------------------------------------------------------------------------


class TestSchema:
    EXPECTED_PATHS = {
        "/conversations/",
        "/conversations/{id}/",
        "/conversations/{id}/messages/",
        "/conversations/{id}/read",
        "/conversations/{id}/assign",
        "/conversations/{id}/close",
        "/conversations/{id}/reopen",
        "/unread_count",
        "/inbox/",
    }

    def test_json_schema_lists_the_paths(self, anon_api):
        response = anon_api.get(f"{API}schema/?format=json")
        assert response.status_code == 200
        schema = json.loads(response.content)
        assert schema["openapi"].startswith("3.")
        assert set(schema["paths"]) >= self.EXPECTED_PATHS
        assert schema["servers"] == [{"url": "/api/chat"}]
        assert set(schema["paths"]["/conversations/{id}/messages/"]) >= {"get", "post"}

    def test_default_yaml(self, customer_api):
        response = customer_api.get(f"{API}schema/")
        assert response.status_code == 200
        assert b"/conversations/{id}/messages/:" in response.content


def test_sender_side_for_customer_who_is_staff(staff, staff_api):
    """A staff member writing in their own conversation speaks as the customer."""
    own = ConversationFactory(customer=staff)
    body = post_message(staff_api, own.pk, "me as a customer").json()
    assert body["sender_side"] == Side.USER


def test_session_works_on_a_site_whose_api_has_no_session_auth(customer_api, monkeypatch):
    """A token-only site (``DEFAULT_AUTHENTICATION_CLASSES`` without the session, read by DRF
    when the views are imported): the widget's session cookie still signs in."""
    from rest_framework.authentication import BasicAuthentication

    from django_support_chat.api.views import ChatAPIView

    monkeypatch.setattr(ChatAPIView, "authentication_classes", [BasicAuthentication])
    assert customer_api.get(f"{API}conversations/").status_code == 200
    assert customer_api.get(f"{API}unread_count").status_code == 200
