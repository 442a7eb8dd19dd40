"""``message_data`` builds the message shape by hand (it is on every send's hot path):
it must stay identical to what DRF's declared ``MessageSerializer`` fields produce."""

from __future__ import annotations

import pytest
from django.utils import timezone

from django_support_chat import services
from django_support_chat.models import Message
from django_support_chat.serializers import MessageSerializer, message_data

from .factories import send

pytestmark = pytest.mark.django_db


def by_fields(message: Message, conversation) -> dict:
    return MessageSerializer(context={"conversation": conversation}).to_representation_by_fields(
        message
    )


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris"])
def test_message_data_matches_the_declared_fields(conversation, customer, staff, settings, tz):
    settings.TIME_ZONE = tz
    timezone.deactivate()
    first = send(conversation, customer, "see https://example.com/a?b=1 <b>now</b> & then")
    reply = send(conversation, staff, "Thanks!\nA second line")
    services.mark_read(conversation, staff)
    orphan = send(conversation, customer, "sender deleted later")
    Message.objects.filter(pk=orphan.pk).update(sender=None)
    conversation.refresh_from_db()
    for message in Message.objects.filter(conversation=conversation).order_by("id"):
        data = message_data(message, conversation)
        assert data == by_fields(message, conversation)
        assert list(data) == list(MessageSerializer.Meta.fields)
    statuses = {
        m.pk: message_data(m, conversation)["status"]
        for m in Message.objects.filter(conversation=conversation)
    }
    # The customer wrote after the reply, so their side has read it.
    assert statuses == {first.pk: "read", reply.pk: "read", orphan.pk: "sent"}


def test_the_api_and_the_event_show_a_message_the_same_way(conversation, customer):
    message = send(conversation, customer, "hello")
    many = MessageSerializer([message], many=True, context={"conversation": conversation}).data
    assert [dict(row) for row in many] == [message_data(message, conversation)]
    assert many[0]["sender"] == {"id": customer.pk, "name": customer.get_full_name()}
