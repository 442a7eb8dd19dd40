"""A send into an open email window asks the database nothing about email (issue #14): the
process remembers, from the committed rows, until when each window is open. Transactional
tests: only committed rows are remembered, as in production (on_commit, autocommit)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_support_chat import notifications
from django_support_chat.models import EmailNotification

from .factories import ConversationFactory, UserFactory, send

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_windows():
    notifications.forget_windows()
    yield
    notifications.forget_windows()


def email_statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "emailnotification" in q["sql"]]


def rows(conversation) -> list[tuple[int, str]]:
    return sorted(
        EmailNotification.objects.filter(conversation=conversation).values_list(
            "recipient_id", "status"
        )
    )


def test_a_window_costs_queries_once_then_none():
    staff = UserFactory(is_staff=True)
    conversation = ConversationFactory()
    customer = conversation.customer
    send(conversation, staff, "first reply")  # opens the customer's window
    assert rows(conversation) == [(customer.pk, "pending")]
    with CaptureQueriesContext(connection) as captured:
        send(conversation, staff, "second reply")
        send(conversation, staff, "third reply")
    assert email_statements(captured) == []
    assert rows(conversation) == [(customer.pk, "pending")]


def test_every_staff_window_asks_until_when_once():
    staff = [UserFactory(is_staff=True) for _ in range(2)]
    conversation = ConversationFactory()
    customer = conversation.customer
    send(conversation, customer, "hello?")  # rows for both staff members
    assert rows(conversation) == sorted((s.pk, "pending") for s in staff)
    with CaptureQueriesContext(connection) as second:
        send(conversation, customer, "anyone?")  # who waits, and until when
    with CaptureQueriesContext(connection) as third:
        send(conversation, customer, "still there?")
    assert len(email_statements(second)) == 2
    assert email_statements(third) == []


def test_a_window_that_ends_is_asked_again():
    staff = UserFactory(is_staff=True)
    conversation = ConversationFactory()
    customer = conversation.customer
    send(conversation, staff, "first reply")
    row = EmailNotification.objects.get(recipient=customer)
    # Within WINDOW_MARGIN of its due time the window counts as closed: the row may be
    # sent by a worker whose clock runs ahead. Sent, the next reply opens a new window.
    due = timezone.now() + notifications.WINDOW_MARGIN - timedelta(seconds=1)
    EmailNotification.objects.filter(pk=row.pk).update(due_at=due)
    notifications.forget_windows()
    send(conversation, staff, "learns the earlier due time")
    EmailNotification.objects.filter(pk=row.pk).update(status="sent")
    send(conversation, staff, "after the email went out")
    assert rows(conversation) == [(customer.pk, "pending"), (customer.pk, "sent")]


def test_a_new_assignee_is_a_window_of_its_own():
    first, second = UserFactory(is_staff=True), UserFactory(is_staff=True)
    conversation = ConversationFactory(assigned_to=first)
    customer = conversation.customer
    send(conversation, customer, "for the first")
    conversation.assigned_to = second
    conversation.save(update_fields=["assigned_to"])
    send(conversation, customer, "for the second")
    assert rows(conversation) == sorted([(first.pk, "pending"), (second.pk, "pending")])


def test_nothing_is_remembered_inside_a_transaction():
    """A row seen inside a transaction may still roll back: it opens no window."""
    from django.db import transaction

    staff = UserFactory(is_staff=True)
    conversation = ConversationFactory()
    message = send(conversation, staff, "a reply")
    notifications.forget_windows()
    with transaction.atomic():
        assert notifications.schedule_for_message(message, conversation) == []  # pending
    with CaptureQueriesContext(connection) as captured:
        notifications.schedule_for_message(message, conversation)
    assert len(email_statements(captured)) == 1  # asked again, and remembered now
    with CaptureQueriesContext(connection) as captured:
        notifications.schedule_for_message(message, conversation)
    assert email_statements(captured) == []
