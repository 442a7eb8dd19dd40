"""Who may call what: every endpoint for every role, as one table.

Roles: ``anonymous`` (not logged in), ``owner`` (customer A, whose conversation is used),
``other`` (customer B, for whom A's conversation is foreign), ``staff`` and ``admin``.
Every request below that is about a conversation targets **customer A's** conversation.

A denied request changes nothing: no message row, no counter, watermark, status, assignee,
audit entry or notification moves.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from django_support_chat import services
from django_support_chat.models import AuditEntry, Conversation, Message, Notification

from .conftest import API
from .factories import ConversationFactory, UserFactory, send
from .predicates import SUPPORT_DESK

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "owner", "other", "staff", "admin")

# endpoint: (method, path; {pk} is customer A's conversation)
ENDPOINTS = {
    "list": ("get", "conversations/"),
    "detail": ("get", "conversations/{pk}/"),
    "messages GET": ("get", "conversations/{pk}/messages/"),
    "messages POST": ("post", "conversations/{pk}/messages/"),
    "read": ("post", "conversations/{pk}/read"),
    "assign": ("post", "conversations/{pk}/assign"),
    "close": ("post", "conversations/{pk}/close"),
    "reopen": ("post", "conversations/{pk}/reopen"),
    "unread_count": ("get", "unread_count"),
    "inbox": ("get", "inbox/"),
    "schema": ("get", "schema/"),
}

# fmt: off
MATRIX = {
    #                  anonymous  owner  other  staff  admin
    "list":           (403,       200,   200,   200,   200),  # each sees only their own
    "detail":         (403,       200,   404,   200,   200),
    "messages GET":   (403,       200,   404,   200,   200),
    "messages POST":  (403,       201,   404,   201,   201),
    "read":           (403,       200,   404,   200,   200),
    "assign":         (403,       403,   403,   200,   200),  # staff only
    "close":          (403,       403,   403,   200,   200),  # staff only
    "reopen":         (403,       403,   403,   200,   200),  # staff only
    "unread_count":   (403,       200,   200,   200,   200),
    "inbox":          (403,       403,   403,   200,   200),  # staff only
    "schema":         (200,       200,   200,   200,   200),  # public documentation
}
# fmt: on

CASES = [
    pytest.param(endpoint, role, expected, id=f"{endpoint}-{role}")
    for endpoint, row in MATRIX.items()
    for role, expected in zip(ROLES, row, strict=True)
]


def test_matrix_covers_every_endpoint():
    assert set(MATRIX) == set(ENDPOINTS)


def payload(endpoint: str, staff_user: Any) -> dict[str, Any] | None:
    if endpoint == "messages POST":
        return {"text": "knock knock", "client_id": str(uuid.uuid4())}
    if endpoint == "assign":
        return {"assignee": staff_user.pk}
    if endpoint == "read":
        return {}
    return None


def snapshot(conversation: Conversation) -> dict[str, Any]:
    """Everything a request about ``conversation`` could change."""
    row = Conversation.objects.filter(pk=conversation.pk).values().get()
    row.pop("updated_at")
    return {
        "conversation": row,
        "messages": list(
            Message.objects.filter(conversation=conversation).values_list("pk", "text")
        ),
        "audit": AuditEntry.objects.count(),
        "notifications": Notification.objects.count(),
    }


@pytest.fixture
def target(customer, staff):
    """Customer A's conversation with activity on both sides and unread counts on both."""
    conversation = ConversationFactory(customer=customer)
    send(conversation, customer, "A's private question")
    send(conversation, customer, "A's follow-up")
    send(conversation, staff, "staff answer")  # the customer has one unread
    services.mark_unread(conversation, staff)  # and so has the staff side
    conversation.refresh_from_db()
    assert conversation.unread_staff_count == 1
    assert conversation.unread_user_count == 1
    return conversation


@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_permission_matrix(api_for, target, staff, endpoint, role, expected):
    method, path = ENDPOINTS[endpoint]
    url = API + path.format(pk=target.pk)
    data = payload(endpoint, staff)
    before = snapshot(target)

    client = api_for(role)
    response = client.get(url) if method == "get" else client.post(url, data, format="json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert snapshot(target) == before, "a denied request changed the conversation"
        assert b"private question" not in response.content
        assert b"follow-up" not in response.content


@pytest.mark.parametrize("role", ["owner", "other", "staff", "admin"])
def test_list_shows_only_own_conversations(api_for, target, role):
    response = api_for(role).get(f"{API}conversations/")
    ids = [row["id"] for row in response.json()["results"]]
    assert (target.pk in ids) is (role == "owner")


@pytest.mark.parametrize("role", ["anonymous", "owner", "other"])
def test_customers_and_anonymous_never_see_the_inbox(api_for, target, role):
    response = api_for(role).get(f"{API}inbox/?search=private")
    assert response.status_code == 403
    assert b"private" not in response.content


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_see_every_conversation_in_the_inbox(api_for, target, other_customer, role):
    theirs = ConversationFactory(customer=other_customer)
    response = api_for(role).get(f"{API}inbox/")
    assert {row["id"] for row in response.json()["results"]} == {target.pk, theirs.pk}


def test_other_customer_cannot_write_into_a_foreign_conversation(other_api, target):
    before = snapshot(target)
    response = other_api.post(
        f"{API}conversations/{target.pk}/messages/",
        {"text": "hijack", "client_id": str(uuid.uuid4())},
        format="json",
    )
    assert response.status_code == 404
    assert snapshot(target) == before
    assert not Message.objects.filter(text="hijack").exists()


def test_foreign_and_missing_conversations_look_the_same(other_api, target):
    foreign = other_api.get(f"{API}conversations/{target.pk}/")
    missing = other_api.get(f"{API}conversations/{target.pk + 1000}/")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


def test_customer_cannot_close_own_conversation(customer_api, target):
    assert customer_api.post(f"{API}conversations/{target.pk}/close").status_code == 403
    assert Conversation.objects.get(pk=target.pk).status == Conversation.Status.OPEN


def test_inactive_staff_is_not_staff(target):
    gone = UserFactory(staff=True, is_active=False)
    client = APIClient()
    client.force_login(gone)  # even with a live session
    assert client.get(f"{API}inbox/").status_code == 403
    assert client.get(f"{API}conversations/{target.pk}/").status_code in (403, 404)


def test_superuser_without_is_staff_is_staff(target):
    boss = UserFactory(is_superuser=True, is_staff=False)
    client = APIClient()
    client.force_login(boss)
    assert client.get(f"{API}inbox/").status_code == 200
    assert client.post(f"{API}conversations/{target.pk}/close").status_code == 200


def test_custom_staff_predicate_grants_the_inbox(settings, target):
    settings.SUPPORT_CHAT = {"STAFF_PREDICATE": SUPPORT_DESK}
    agent = UserFactory(email="kim@support.example.com")  # not is_staff
    client = APIClient()
    client.force_login(agent)
    assert client.get(f"{API}inbox/").status_code == 200
    response = client.post(
        f"{API}conversations/{target.pk}/messages/",
        {"text": "hi from the desk", "client_id": str(uuid.uuid4())},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["sender_side"] == "staff"


def test_staff_cannot_assign_to_a_customer(staff_api, target, other_customer):
    response = staff_api.post(
        f"{API}conversations/{target.pk}/assign",
        {"assignee": other_customer.pk},
        format="json",
    )
    assert response.status_code == 400
    assert "assignee" in response.json()
    assert Conversation.objects.get(pk=target.pk).assigned_to is None


def test_closed_conversation_refuses_staff_reply_not_customer(api_for, target, staff):
    services.close(target, staff)
    reply = {"text": "late", "client_id": str(uuid.uuid4())}
    url = f"{API}conversations/{target.pk}/messages/"
    assert api_for("staff").post(url, reply, format="json").status_code == 409
    again = {"text": "still there?", "client_id": str(uuid.uuid4())}
    assert api_for("owner").post(url, again, format="json").status_code == 201
