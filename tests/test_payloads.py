"""``payloads`` is the one representation of a message and a conversation: the REST API
returns exactly what the realtime events carry, and the declared (schema) fields match."""

from __future__ import annotations

import pytest
from django.utils import timezone

from django_support_chat import payloads, services
from django_support_chat.api.serializers import ConversationSerializer, MessageSerializer
from django_support_chat.models import Conversation, Message, Side

from .conftest import API
from .factories import send

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris"])
def test_rest_history_is_the_message_payload(
    conversation, customer, staff, customer_api, tz, settings
):
    settings.TIME_ZONE = tz
    timezone.deactivate()
    send(conversation, customer, "see https://example.com/a?b=1 <b>now</b> & then")
    send(conversation, staff, "Thanks!\nA second line")
    services.mark_read(conversation, staff)
    orphan = send(conversation, customer, "sender deleted later")
    Message.objects.filter(pk=orphan.pk).update(sender=None)
    conversation.refresh_from_db()

    response = customer_api.get(f"{API}conversations/{conversation.pk}/messages/")
    assert response.status_code == 200
    rows = response.json()["results"]
    expected = [
        payloads.message_data(m, conversation)
        for m in Message.objects.filter(conversation=conversation).order_by("id")
    ]
    assert sorted(rows, key=lambda r: r["id"]) == expected
    assert all(list(row) == list(MessageSerializer.Meta.fields) for row in rows)
    statuses = {row["text"][:6]: row["status"] for row in rows}
    # The customer wrote after the reply, so their side has read it.
    assert statuses == {"see ht": "read", "Thanks": "read", "sender": "sent"}
    assert next(r for r in rows if r["id"] == orphan.pk)["sender"] is None
    if tz == "UTC":
        assert rows[0]["created_at"].endswith("Z")


def test_rest_conversation_is_the_conversation_payload(conversation, customer, staff, staff_api):
    send(conversation, customer, "hello")
    services.assign(conversation, staff, staff)
    conversation = Conversation.objects.select_related("last_message").get(pk=conversation.pk)
    response = staff_api.get(f"{API}conversations/{conversation.pk}/")
    assert response.status_code == 200
    assert response.json() == payloads.conversation_data(conversation, Side.STAFF)
    assert list(response.json()) == list(ConversationSerializer.Meta.fields)


def test_staff_sender_is_named_by_the_staff_name(conversation, customer, staff):
    reply = send(conversation, staff, "hi")
    mine = send(conversation, customer, "hello")
    assert payloads.message_data(reply)["sender"] == {"id": staff.pk, "name": "Sam Support"}
    assert payloads.message_data(mine)["sender"] == {"id": customer.pk, "name": "Alice Archer"}
