"""Input serializers. Output representations live in ``django_support_chat.serializers``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

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
