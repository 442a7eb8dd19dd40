"""DRF serializers: input validation, and the output shapes for the OpenAPI schema.

The output serializers describe the fields for the schema only; their
``to_representation`` delegates to ``django_support_chat.payloads``, the one
representation of a message and a conversation (also used by the realtime events).

Every serializer and enum here has an OpenAPI component name starting with
``SupportChat`` (``component_name=``), so the chat's components never replace a host's own
(``User``, ``StatusEnum``, ...) when the host's schema includes the chat's endpoints.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from ..models import Conversation, Message, Notification, Side
from ..payloads import conversation_data, message_data, notification_data
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


# Blank text is refused, so the schema says minLength 1 (DRF's "blank" check with the same
# message as ``clean_text``, which refuses whitespace-only text). No maxLength in the schema:
# MAX_MESSAGE_LENGTH counts after trimming.
@extend_schema_field({"type": "string", "minLength": 1})
class MessageTextField(StrictCharField):
    """The message text: a string, not blank once surrounding whitespace is trimmed."""

    default_error_messages = {"blank": _("Message text may not be blank.")}


def _enum_field(component_name: str, choices: Any) -> Any:
    """A read-only ChoiceField class whose schema is the enum component ``component_name``.

    drf-spectacular names inline enums after the field (``StatusEnum``, ``SenderSideEnum``)
    across the whole schema, so a host's own ``status`` field would collide with ours:
    ours are components of their own, referenced, never inline enums.
    """
    values = [value for value, _label in choices]
    listing = "\n".join(f"* `{value}` - {label}" for value, label in choices)
    schema = {"type": "string", "enum": values, "description": listing}

    @extend_schema_field(schema, component_name=component_name)
    class EnumField(serializers.ChoiceField):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(choices=choices, **kwargs)

    EnumField.__name__ = EnumField.__qualname__ = component_name.removeprefix("SupportChat")
    return EnumField


SenderSideField = _enum_field("SupportChatSenderSideEnum", Side.choices)
MessageStatusField = _enum_field("SupportChatMessageStatusEnum", Message.Status.choices)
ConversationStatusField = _enum_field(
    "SupportChatConversationStatusEnum", Conversation.Status.choices
)
NotificationTypeField = _enum_field("SupportChatNotificationTypeEnum", Notification.Type.choices)


@extend_schema_serializer(component_name="SupportChatMessageCreate")
class MessageCreateSerializer(serializers.Serializer):
    text = MessageTextField(
        trim_whitespace=False,
        help_text="Plain text. Surrounding whitespace is trimmed; what remains must not be "
        "blank, must not be longer than MAX_MESSAGE_LENGTH (5000 characters by default) and "
        "must not contain control characters (tab and line breaks are fine) or Unicode "
        "bidirectional overrides.",
    )
    client_id = StrictUUIDField(
        help_text="A UUID the client generates per message; resending it returns the stored message."
    )

    def validate_text(self, value: str) -> str:
        try:
            return clean_text(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


@extend_schema_serializer(component_name="SupportChatRead")
class ReadSerializer(serializers.Serializer):
    up_to_id = serializers.IntegerField(
        required=False, min_value=0, help_text="Defaults to the newest message."
    )


@extend_schema_serializer(component_name="SupportChatAssign")
class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(
        allow_null=True, help_text="Id of a staff user, or null to unassign."
    )


class _IdListField(serializers.ListField):
    """A list of ids whose errors are flat messages (``SupportChatValidationError``), not
    DRF's ``{index: [messages]}``."""

    def run_child_validation(self, data: list[Any]) -> list[Any]:
        try:
            return super().run_child_validation(data)  # type: ignore[no-any-return]
        except serializers.ValidationError:
            raise serializers.ValidationError(
                _("Every id must be an integer from 1 to 2**63 - 1.")
            ) from None


@extend_schema_serializer(component_name="SupportChatNotificationRead")
class NotificationReadSerializer(serializers.Serializer):
    """Exactly one of ``ids`` and ``all``."""

    ids = _IdListField(
        child=serializers.IntegerField(min_value=1, max_value=_MAX_ID),
        required=False,
        min_length=1,
        max_length=500,
        help_text="Ids of the caller's notifications to mark read; other ids are ignored.",
    )
    all = serializers.BooleanField(
        required=False, help_text="`true`: mark every notification of the caller read."
    )

    def validate_all(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError(_("Only true is allowed; leave it out instead."))
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("ids" in attrs) == ("all" in attrs):
            raise serializers.ValidationError(_('Send either "ids" or "all": true.'))
        return attrs


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only: DRF would also take "yes", "on", 1 and the like."""

    default_error_messages = {"invalid": _("Must be true or false.")}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


_PREFERENCE_HELP = {
    "email": "Email about messages left unread while away (customers: staff replies; staff: "
    "customer messages).",
    "sound": "Staff inbox: a sound for new activity.",
    "desktop": "Staff inbox: desktop notifications while the tab is hidden.",
}


@extend_schema_serializer(component_name="SupportChatNotificationPreferences")
class NotificationPreferencesSerializer(serializers.Serializer):
    """The caller's notification choices (defaults until they change one)."""

    email = StrictBooleanField(help_text=_PREFERENCE_HELP["email"])
    sound = StrictBooleanField(help_text=_PREFERENCE_HELP["sound"])
    desktop = StrictBooleanField(help_text=_PREFERENCE_HELP["desktop"])


@extend_schema_serializer(component_name="SupportChatNotificationPreferencesUpdate")
class NotificationPreferencesUpdateSerializer(serializers.Serializer):
    """Any of the three; the others keep their value. Unknown keys are refused."""

    email = StrictBooleanField(required=False, help_text=_PREFERENCE_HELP["email"])
    sound = StrictBooleanField(required=False, help_text=_PREFERENCE_HELP["sound"])
    desktop = StrictBooleanField(required=False, help_text=_PREFERENCE_HELP["desktop"])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: [_("Unknown preference.")] for name in unknown}
            )
        return attrs


class InboxQuerySerializer(serializers.Serializer):
    # allow_blank: an empty parameter (``?search=``) means "not set", as DRF reads every
    # optional query parameter; the schema must not say minLength 1.
    status = serializers.ChoiceField(
        choices=["open", "closed", "all"], required=False, allow_blank=True
    )
    search = serializers.CharField(required=False, max_length=200, allow_blank=True)
    assigned = serializers.CharField(
        required=False, allow_blank=True, help_text="'me', 'none', or a staff user id."
    )
    unread = serializers.BooleanField(required=False)

    def validate_assigned(self, value: str) -> str:
        # isdigit() alone accepts "²" and other non-ASCII digits that int() refuses.
        is_id = value.isascii() and value.isdigit() and len(value) < 20 and int(value) <= _MAX_ID
        if value not in ("", "me", "none") and not is_id:
            raise serializers.ValidationError(_("Use 'me', 'none' or a user id."))
        return value


class HistoryQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        required=False, min_value=0, help_text="Only messages with a larger id, oldest first."
    )
    after_seq = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        help_text="Only messages with a larger `seq`, oldest first: how a client fills a hole "
        "it saw in the sequence numbers. Takes precedence over `after`.",
    )


# Output shapes ------------------------------------------------------------------------------


@extend_schema_serializer(component_name="SupportChatUser")
class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(
        read_only=True,
        help_text="Display name. For staff members, what customers may see: never a login "
        "or an email address unless the site's STAFF_DISPLAY_NAME hook returns one.",
    )


@extend_schema_serializer(component_name="SupportChatMessage")
class MessageSerializer(serializers.ModelSerializer):
    conversation = serializers.IntegerField(source="conversation_id", read_only=True)
    sender = UserSerializer(read_only=True, allow_null=True)
    html = serializers.CharField(
        read_only=True,
        help_text="The text escaped, with URLs turned into links: safe to insert as HTML.",
    )
    sender_side = SenderSideField(read_only=True)
    status = MessageStatusField(
        read_only=True,
        help_text="sent, delivered or read, for the side that did not send the message.",
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "seq",
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


@extend_schema_serializer(component_name="SupportChatLastMessage")
class LastMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    sender_side = SenderSideField(read_only=True)
    text = serializers.CharField(read_only=True, help_text="The first 200 characters.")
    created_at = serializers.DateTimeField(read_only=True)


@extend_schema_serializer(component_name="SupportChatConversation")
class ConversationSerializer(serializers.ModelSerializer):
    customer = UserSerializer(read_only=True)
    assigned_to = UserSerializer(read_only=True, allow_null=True)
    unread_count = serializers.IntegerField(
        read_only=True, help_text="Unread messages for the side asking (customer or staff)."
    )
    status = ConversationStatusField(read_only=True)
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
            "last_seq",
            "last_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        return conversation_data(instance, self.context.get("side", Side.USER))


@extend_schema_serializer(component_name="SupportChatNotification")
class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    type = NotificationTypeField(
        read_only=True,
        help_text="message_received: a new message for you; assignment: a conversation was "
        "assigned to you; conversation_closed: staff closed your conversation.",
    )
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    message_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The new message (message_received only)."
    )
    created_at = serializers.DateTimeField(read_only=True)
    read = serializers.BooleanField(
        read_only=True, help_text="Read once you read its conversation or mark it read."
    )
    emailed_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When an email told you of it (message_received only); null until then.",
    )

    def to_representation(self, instance: Notification) -> dict[str, Any]:
        return notification_data(instance)


# Schema only: pages, small answers, errors ---------------------------------------------------


_PAGE_LINK = "URL of the {} page, to follow as it is; null at that end of the list."


class _PageLinks(serializers.Serializer):
    """``next`` and ``previous`` of every cursor-paginated list; subclasses add ``results``."""

    next = serializers.URLField(
        read_only=True, allow_null=True, help_text=_PAGE_LINK.format("next")
    )
    previous = serializers.URLField(
        read_only=True, allow_null=True, help_text=_PAGE_LINK.format("previous")
    )


@extend_schema_serializer(component_name="SupportChatMessagePage", many=False)
class MessagePageSerializer(_PageLinks):
    """A page of messages (cursor pagination). History: newest first, ``next`` leads to
    older messages. Catch-up (``?after_seq=`` or ``?after=``): oldest first, ``next``
    leads to newer ones and is null once the client is up to date."""

    results = MessageSerializer(many=True, read_only=True)


@extend_schema_serializer(component_name="SupportChatConversationPage", many=False)
class ConversationPageSerializer(_PageLinks):
    """A page of conversations (cursor pagination), newest activity first."""

    results = ConversationSerializer(many=True, read_only=True)


@extend_schema_serializer(component_name="SupportChatUnreadCount")
class UnreadCountSerializer(serializers.Serializer):
    unread_count = serializers.IntegerField(
        read_only=True,
        help_text="Customer-side unread messages over the caller's own conversations.",
    )
    staff_unread_conversations = serializers.IntegerField(
        required=False,
        help_text="Staff only: conversations with customer messages staff have not read.",
    )


@extend_schema_serializer(component_name="SupportChatNotificationPage", many=False)
class NotificationPageSerializer(_PageLinks):
    """A page of the caller's notifications (cursor pagination), newest first."""

    results = NotificationSerializer(many=True, read_only=True)


@extend_schema_serializer(component_name="SupportChatNotificationUnreadCount")
class NotificationUnreadCountSerializer(serializers.Serializer):
    unread_count = serializers.IntegerField(
        read_only=True, help_text="The caller's unread notifications."
    )


@extend_schema_serializer(component_name="SupportChatNotificationReadResult")
class NotificationReadResultSerializer(serializers.Serializer):
    marked = serializers.IntegerField(
        read_only=True, help_text="Notifications this request marked read (0 on a repeat)."
    )
    unread_count = serializers.IntegerField(
        read_only=True, help_text="The caller's unread notifications left."
    )


@extend_schema_serializer(component_name="SupportChatWebSocketToken")
class WebSocketTokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)
    expires_in = serializers.IntegerField(read_only=True, help_text="Seconds (WS_TOKEN_MAX_AGE).")


@extend_schema_serializer(component_name="SupportChatError")
class ErrorSerializer(serializers.Serializer):
    """Every error but a validation error: what went wrong, in words for people."""

    detail = serializers.CharField(read_only=True)


class ValidationErrorSerializer(serializers.Serializer):
    """DRF's validation error: each invalid field (or ``non_field_errors``) with its messages.

    Its schema (component ``SupportChatValidationError``, an object of string arrays) comes
    from ``api.schema``: a serializer cannot declare arbitrary keys."""
