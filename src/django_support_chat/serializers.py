"""Representations shared by the REST API and the realtime events."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import Conversation, Message, Side
from .text import render_text


def display_name(user: Any) -> str:
    if user is None:
        return ""
    return (user.get_full_name() or user.get_username()).strip()


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk", read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, user: Any) -> str:
        return display_name(user)


class MessageSerializer(serializers.ModelSerializer):
    conversation = serializers.IntegerField(source="conversation_id", read_only=True)
    sender = UserSerializer(read_only=True, allow_null=True)
    html = serializers.SerializerMethodField(
        help_text="The text escaped, with URLs turned into links: safe to insert as HTML."
    )
    status = serializers.SerializerMethodField(
        help_text="sent, delivered or read, for the side that did not send the message."
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "sender",
            "sender_side",
            "text",
            "html",
            "client_id",
            "created_at",
            "status",
        ]
        read_only_fields = fields

    def get_html(self, message: Message) -> str:
        return render_text(message.text)

    def get_status(self, message: Message) -> str:
        conversation = self.context.get("conversation") or message.conversation
        return message.status_for_recipient(conversation)

    def to_representation(self, instance: Message) -> dict[str, Any]:
        # The fields above describe the shape (and the OpenAPI schema); ``message_data``
        # builds it without DRF's per-field machinery, which cost more than the database
        # work of a send. tests/test_serializers.py checks that the two agree.
        return message_data(instance, self.context.get("conversation"))

    def to_representation_by_fields(self, instance: Message) -> dict[str, Any]:
        """DRF's own field-by-field representation (for the test that compares them)."""
        return dict(super().to_representation(instance))


class ConversationSerializer(serializers.ModelSerializer):
    customer = UserSerializer(read_only=True)
    assigned_to = UserSerializer(read_only=True, allow_null=True)
    unread_count = serializers.SerializerMethodField(
        help_text="Unread messages for the side asking (customer or staff)."
    )
    last_message = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "customer",
            "assigned_to",
            "status",
            "last_message_at",
            "unread_count",
            "unread_user_count",
            "unread_staff_count",
            "user_delivered_id",
            "user_read_id",
            "staff_delivered_id",
            "staff_read_id",
            "last_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_unread_count(self, conversation: Conversation) -> int:
        return conversation.unread_count(self.context.get("side", Side.USER))

    def get_last_message(self, conversation: Conversation) -> dict[str, Any] | None:
        # Filled by the views and services with a prefetched/known message, never a query per row.
        message = getattr(conversation, "last_message", None)
        if message is None:
            return None
        return {
            "id": message.pk,
            "sender_side": message.sender_side,
            "text": message.text[:200],
            "created_at": serializers.DateTimeField().to_representation(message.created_at),
        }


_datetime = serializers.DateTimeField()


def message_data(message: Message, conversation: Conversation | None = None) -> dict[str, Any]:
    """A message as the API and the events show it (``MessageSerializer``'s fields)."""
    sender = message.sender
    return {
        "id": message.pk,
        "conversation": message.conversation_id,
        "sender": None if sender is None else {"id": sender.pk, "name": display_name(sender)},
        "sender_side": str(message.sender_side),
        "text": message.text,
        "html": render_text(message.text),
        "client_id": str(message.client_id),
        "created_at": _datetime.to_representation(message.created_at),
        "status": str(message.status_for_recipient(conversation or message.conversation)),
    }


def conversation_data(conversation: Conversation, side: Side | str = Side.STAFF) -> dict[str, Any]:
    return dict(ConversationSerializer(conversation, context={"side": side}).data)
