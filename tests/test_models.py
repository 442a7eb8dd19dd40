"""Model behaviour: derived message status, string forms, ``Side``, DB constraints."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction

from django_support_chat.models import AuditEntry, Conversation, Message, Notification, Side

from .factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


class TestSide:
    def test_other(self):
        assert Side.USER.other is Side.STAFF
        assert Side.STAFF.other is Side.USER

    def test_other_of_value_built_from_string(self):
        assert Side("user").other is Side.STAFF
        assert Side("staff").other is Side.USER


class TestStatusForRecipient:
    """A customer's message is judged by the staff watermarks, and vice versa."""

    @pytest.fixture
    def customer_message(self, conversation):
        return MessageFactory(conversation=conversation, sender_side=Side.USER)

    def test_sent_when_no_watermark_reaches_it(self, conversation, customer_message):
        conversation.staff_delivered_id = customer_message.pk - 1
        conversation.staff_read_id = customer_message.pk - 1
        assert customer_message.status_for_recipient(conversation) == Message.Status.SENT

    def test_delivered_when_delivered_watermark_reaches_it(self, conversation, customer_message):
        conversation.staff_delivered_id = customer_message.pk
        assert customer_message.status_for_recipient(conversation) == Message.Status.DELIVERED

    def test_read_when_read_watermark_reaches_it(self, conversation, customer_message):
        conversation.staff_read_id = customer_message.pk + 5
        conversation.staff_delivered_id = 0  # read wins even if delivered lags behind
        assert customer_message.status_for_recipient(conversation) == Message.Status.READ

    def test_own_side_watermarks_do_not_count(self, conversation, customer_message):
        conversation.user_delivered_id = customer_message.pk
        conversation.user_read_id = customer_message.pk
        assert customer_message.status_for_recipient(conversation) == Message.Status.SENT

    def test_staff_message_uses_customer_watermarks(self, conversation):
        staff_user = UserFactory(staff=True)
        message = MessageFactory(
            conversation=conversation, sender=staff_user, sender_side=Side.STAFF
        )
        conversation.staff_read_id = message.pk  # the staff side's own watermark: irrelevant
        assert message.status_for_recipient(conversation) == Message.Status.SENT
        conversation.user_delivered_id = message.pk
        assert message.status_for_recipient(conversation) == Message.Status.DELIVERED
        conversation.user_read_id = message.pk
        assert message.status_for_recipient(conversation) == Message.Status.READ


class TestConversation:
    def test_defaults(self, conversation):
        assert conversation.status == Conversation.Status.OPEN
        assert conversation.is_open
        assert conversation.unread_user_count == conversation.unread_staff_count == 0
        assert conversation.watermarks() == {
            "user_delivered_id": 0,
            "user_read_id": 0,
            "staff_delivered_id": 0,
            "staff_read_id": 0,
        }
        assert conversation.last_message is None
        assert conversation.last_message_at is not None

    def test_unread_count_per_side(self, conversation):
        conversation.unread_user_count = 2
        conversation.unread_staff_count = 7
        assert conversation.unread_count(Side.USER) == 2
        assert conversation.unread_count("user") == 2
        assert conversation.unread_count(Side.STAFF) == 7

    def test_queryset_helpers(self, customer, other_customer):
        mine = ConversationFactory(customer=customer)
        closed = ConversationFactory(customer=customer, status=Conversation.Status.CLOSED)
        theirs = ConversationFactory(customer=other_customer)
        assert set(Conversation.objects.for_customer(customer)) == {mine, closed}
        assert set(Conversation.objects.open()) == {mine, theirs}


class TestStr:
    def test_conversation(self, conversation):
        assert str(conversation) == f"#{conversation.pk} alice (Open)"
        conversation.status = Conversation.Status.CLOSED
        assert str(conversation) == f"#{conversation.pk} alice (Closed)"

    def test_message_truncates_text(self, conversation):
        message = MessageFactory(conversation=conversation, text="x" * 100)
        assert str(message) == f"#{message.pk} in {conversation.pk}: {'x' * 40}"

    def test_notification(self, customer):
        notification = Notification.objects.create(
            user=customer, type=Notification.Type.MESSAGE_RECEIVED
        )
        assert str(notification) == "Message received for alice"

    def test_audit_entry(self, staff, conversation):
        entry = AuditEntry.objects.create(
            actor=staff, action=AuditEntry.Action.CLOSE, conversation=conversation
        )
        assert str(entry) == f"sam Closed #{conversation.pk}"


class TestClientIdConstraint:
    def test_same_sender_same_client_id_rejected_by_database(self, conversation):
        client_id = uuid.uuid4()
        MessageFactory(conversation=conversation, client_id=client_id)
        with pytest.raises(IntegrityError), transaction.atomic():
            # Bypass every Python-level check: the database itself refuses the duplicate.
            Message.objects.bulk_create(
                [
                    Message(
                        conversation=conversation,
                        sender=conversation.customer,
                        sender_side=Side.USER,
                        text="again",
                        client_id=client_id,
                        seq=10**6,  # a free seq: only client_id is duplicated
                    )
                ]
            )
        assert Message.objects.filter(client_id=client_id).count() == 1

    def test_same_client_id_allowed_for_another_sender_or_conversation(self, conversation, staff):
        client_id = uuid.uuid4()
        MessageFactory(conversation=conversation, client_id=client_id)
        MessageFactory(
            conversation=conversation, sender=staff, sender_side=Side.STAFF, client_id=client_id
        )
        elsewhere = ConversationFactory(customer=conversation.customer)
        MessageFactory(conversation=elsewhere, client_id=client_id)
        assert Message.objects.filter(client_id=client_id).count() == 3
