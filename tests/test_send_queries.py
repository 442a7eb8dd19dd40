"""What one send costs the database, statement by statement (issue #14): the customer and
the assignee named by the events ride on the row-lock statement, and a send into an
open email window does not load anyone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_support_chat import services
from django_support_chat.models import Conversation

from .factories import UserFactory

pytestmark = pytest.mark.django_db


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if not q["sql"].upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))
    ]


def trimmed(conversation: Conversation) -> Conversation:
    """The instance a conversation socket keeps: id and customer only."""
    return Conversation.objects.only("id", "customer_id").get(pk=conversation.pk)


def user_table() -> str:
    return UserFactory._meta.model._meta.db_table


def user_selects(sql: list[str]) -> list[str]:
    """The statements that read the user table."""
    return [s for s in sql if s.startswith("SELECT") and f'FROM "{user_table()}"' in s]


def measured_send(
    conversation: Conversation, sender: Any, text: str, capture_on_commit: Any
) -> tuple[list[str], list[Any]]:
    """Send ``text`` from a socket's trimmed instance of ``conversation``; the statements
    it ran (its events built and sent after the commit) and the commit callbacks."""
    instance = trimmed(conversation)
    with (
        CaptureQueriesContext(connection) as captured,
        capture_on_commit(execute=True) as callbacks,
    ):
        services.send_message(instance, sender, text, uuid.uuid4())
    return statements(captured), callbacks


@pytest.mark.parametrize("assigned", [False, True])
def test_a_staff_reply_loads_no_user(
    conversation, customer, staff, assigned, django_capture_on_commit_callbacks
):
    if assigned:
        services.assign(conversation, staff, staff)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(conversation, customer, "first", uuid.uuid4())
        services.send_message(conversation, staff, "opens the email window", uuid.uuid4())
    sql, _ = measured_send(conversation, staff, "a reply", django_capture_on_commit_callbacks)
    # The customer is joined into the row lock, the assignee is the sender: never a
    # statement of its own.
    assert not user_selects(sql), sql
    # lock, message, counters, audit, notification, pending-email check
    assert len(sql) == 6, "\n".join(s[:90] for s in sql)


def test_a_staff_reply_in_a_colleagues_conversation_loads_the_colleague_once(
    conversation, customer, staff, django_capture_on_commit_callbacks
):
    """Assigned to someone else: the customer's notification:new names the assignee, who
    is loaded once, after the commit (not joined into every reply's lock)."""
    colleague = UserFactory(is_staff=True)
    services.assign(conversation, staff, colleague)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(conversation, customer, "first", uuid.uuid4())
    sql, callbacks = measured_send(
        conversation, staff, "a reply", django_capture_on_commit_callbacks
    )
    on_users = user_selects(sql)
    assert len(on_users) == 1 and f'"{user_table()}"."id" = {colleague.pk}' in on_users[0]
    assert callbacks


def test_a_customer_message_to_every_staff_is_one_email_query(
    conversation, customer, staff, django_capture_on_commit_callbacks
):
    """Unassigned: the staff who have no pending email here, as ids, in one statement;
    the staff already waiting get no second row, the others get theirs."""
    from django_support_chat.models import EmailNotification

    other = UserFactory(is_staff=True)
    UserFactory(is_staff=True, is_active=False)  # never a recipient
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(conversation, customer, "opens the window", uuid.uuid4())
    assert set(
        EmailNotification.objects.filter(conversation=conversation).values_list(
            "recipient_id", flat=True
        )
    ) == {staff.pk, other.pk}
    late = UserFactory(is_staff=True)  # staff since the window opened
    sql, _ = measured_send(
        conversation, customer, "a second one", django_capture_on_commit_callbacks
    )
    on_users = user_selects(sql)
    assert len(on_users) == 1, sql
    assert "emailnotification" in on_users[0]  # the pending check rides on it
    assert not any(s.startswith("SELECT") and "emailnotification" in s for s in sql[:3]), sql
    # lock, message, counters, the staff without a pending email, the new row for `late`
    # and its enqueued task
    assert len(sql) == 6, "\n".join(s[:90] for s in sql)
    rows = EmailNotification.objects.filter(conversation=conversation)
    assert sorted(rows.values_list("recipient_id", flat=True)) == sorted(
        [staff.pk, other.pk, late.pk]
    )


def test_staff_ids_with_a_custom_predicate(settings, customer, staff):
    """A host predicate decides on instances: no SQL shortcut, the same answer."""
    desk = UserFactory(is_staff=False, email="desk@example.com")
    settings.SUPPORT_CHAT = {
        "STAFF_PREDICATE": lambda user: user.email == "desk@example.com" or user.is_staff
    }
    assert set(services.staff_user_ids()) == {staff.pk, desk.pk}
    assert set(services.staff_user_ids([desk.pk])) == {staff.pk}
    assert customer.pk not in services.staff_user_ids()


@pytest.mark.parametrize("assigned", [False, True])
def test_a_customer_message_joins_no_user(
    conversation, customer, staff, assigned, django_capture_on_commit_callbacks
):
    """The customer is the sender: the lock reads the conversation row alone. An assignee
    is loaded once, for the notification event that names it."""
    if assigned:
        services.assign(conversation, staff, staff)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(conversation, customer, "first", uuid.uuid4())
    sql, callbacks = measured_send(
        conversation, customer, "again", django_capture_on_commit_callbacks
    )
    lock = next(s for s in sql if "support_chat_conversation" in s and s.startswith("SELECT"))
    assert user_table() not in lock, lock
    on_users = user_selects(sql)
    if assigned:
        # one for the assignee's notification:new (after the commit)
        assert len(on_users) == 1 and f'"{user_table()}"."id" = {staff.pk}' in on_users[0]
    else:
        assert [s for s in on_users if "emailnotification" not in s] == []
    assert callbacks  # the events were built and sent


@pytest.mark.parametrize("sender", ["customer", "staff"])
def test_a_rest_send_reads_the_conversation_once_without_joins(
    request, conversation, customer, staff, sender, django_capture_on_commit_callbacks
):
    """The view's access check reads the conversation's id and customer only; the service
    locks and reads the row itself. The 201 carries the message as stored."""
    from .test_api import post_message

    api = request.getfixturevalue(f"{sender}_api")
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(conversation, customer, "first", uuid.uuid4())
    with (
        CaptureQueriesContext(connection) as captured,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = post_message(api, conversation.pk, "over REST")
    assert response.status_code == 201, response.content
    assert response.json()["text"] == "over REST"
    reads = [
        s
        for s in statements(captured)
        if s.startswith("SELECT") and 'FROM "support_chat_conversation"' in s
    ]
    check, lock = reads  # the access check, then the row lock
    assert "JOIN" not in check and "FOR UPDATE" not in check, check
    if connection.features.has_select_for_update:  # SQLite has no row locks
        assert "FOR UPDATE" in lock
