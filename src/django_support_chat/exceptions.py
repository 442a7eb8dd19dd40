"""Errors raised by the service layer; the API and the consumers turn them into 4xx / error frames."""

from __future__ import annotations

from django.core.exceptions import ValidationError

__all__ = ["ConversationClosed", "PermissionDenied", "ValidationError"]


class ChatError(Exception):
    code = "error"
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermissionDenied(ChatError):
    code = "permission_denied"
    status_code = 403


class ConversationClosed(ChatError):
    code = "conversation_closed"
    status_code = 409
