"""DRF serializers: input validation, and the output shapes for the OpenAPI schema.

The output serializers describe the fields for the schema only; their
``to_representation`` delegates to ``django_support_chat.payloads``, the one
representation of a message and a conversation (also used by the realtime events).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..models import Conversation, Message, Side
from ..payloads import conversation_data, message_data
from ..text import clean_text

# Largest primary key a database can hold (signed 64-bit): larger numbers are no user id.
_MAX_ID = 2**63 - 1


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and lists instead of coercing them."""

    default_error_messages = {"invalid_type": _("Must be a string.")}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid_type")
        return data


class StrictUUIDField(serializers.UUIDField):
    """A UUIDField that takes only the string form (DRF would also turn numbers into UUIDs)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class MessageCreateSerializer(serializers.Serializer):
    text = StrictCharField(trim_whitespace=False, allow_blank=True)
    client_id = StrictUUIDField(
        help_text="A UUID the client generates per message; resending it returns the stored message."
    )

    def validate_text(self, value: str) -> str:
        try:
            return clean_text(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class ReadSerializer(serializers.Serializer):
    up_to_id = serializers.IntegerField(
        required=False, min_value=0, help_text="Defaults to the newest message."
    )


class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(
        allow_null=True, help_text="Id of a staff user, or null to unassign."
    )


class InboxQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["open", "closed", "all"], required=False)
    search = serializers.CharField(required=False, max_length=200)
    assigned = serializers.CharField(required=False, help_text="'me', 'none', or a staff user id.")
    unread = serializers.BooleanField(required=False)

    def validate_assigned(self, value: str) -> str:
        # isdigit() alone accepts "²" and other non-ASCII digits that int() refuses.
        is_id = value.isascii() and value.isdigit() and len(value) < 20 and int(value) <= _MAX_ID
        if value not in ("me", "none") and not is_id:
            raise serializers.ValidationError(_("Use 'me', 'none' or a user id."))
        return value


class HistoryQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        required=False, min_value=0, help_text="Only messages with a larger id, oldest first."
    )


# Output shapes ------------------------------------------------------------------------------


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(
        read_only=True,
        help_text="Display name. For staff members, what customers may see: never a login "
        "or an email address unless the site's STAFF_DISPLAY_NAME hook returns one.",
    )


class MessageSerializer(serializers.ModelSerializer):
    conversation = serializers.IntegerField(source="conversation_id", read_only=True)
    sender = UserSerializer(read_only=True, allow_null=True)
    html = serializers.CharField(
        read_only=True,
        help_text="The text escaped, with URLs turned into links: safe to insert as HTML.",
    )
    status = serializers.ChoiceField(
        choices=["sent", "delivered", "read"],
        read_only=True,
        help_text="sent, delivered or read, for the side that did not send the message.",
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

    def to_representation(self, instance: Message) -> dict[str, Any]:
        return message_data(instance, self.context.get("conversation"))


class LastMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    sender_side = serializers.ChoiceField(choices=Side.choices, read_only=True)
    text = serializers.CharField(read_only=True, help_text="The first 200 characters.")
    created_at = serializers.DateTimeField(read_only=True)


class ConversationSerializer(serializers.ModelSerializer):
    customer = UserSerializer(read_only=True)
    assigned_to = UserSerializer(read_only=True, allow_null=True)
    unread_count = serializers.IntegerField(
        read_only=True, help_text="Unread messages for the side asking (customer or staff)."
    )
    last_message = LastMessageSerializer(read_only=True, allow_null=True)

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

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        return conversation_data(instance, self.context.get("side", Side.USER))
