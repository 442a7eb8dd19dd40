"""What one send costs the database, statement by statement (issue #14): the customer and
the assignee named by the events ride on the row-lock statement, and a send into an
open email window does not load anyone."""

from __future__ import annotations

import uuid

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


@pytest.mark.parametrize("assigned", [False, True])
def test_a_staff_reply_loads_no_user(
    conversation, customer, staff, assigned, django_capture_on_commit_callbacks
):
    if assigned:
        services.assign(conversation, staff, staff)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(conversation, customer, "first", uuid.uuid4())
        services.send_message(conversation, staff, "opens the email window", uuid.uuid4())
    instance = trimmed(conversation)
    with (
        CaptureQueriesContext(connection) as captured,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.send_message(instance, staff, "a reply", uuid.uuid4())
    sql = statements(captured)
    user_table = UserFactory._meta.model._meta.db_table
    # Joined into the row lock; never a statement of its own.
    assert not [s for s in sql if s.startswith("SELECT") and f'FROM "{user_table}"' in s], sql
    # lock, message, counters, audit, notification, pending-email check
    assert len(sql) == 6, "\n".join(s[:90] for s in sql)
