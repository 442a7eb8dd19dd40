"""Django admin: chat state is shown, never edited here.

Counters, watermarks, status, assignee, the last message and every message field are
kept by the service layer; a save from an admin form would write them outside it (and
could overwrite a concurrent send's counters). So conversations and messages are
view-only. Closing and reopening go through the services, as admin actions. Deleting a
conversation (with its messages) stays possible; a single message cannot be deleted
alone, which would leave the conversation's counters and last message wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import names, services
from .exceptions import ChatError
from .models import AuditEntry, Conversation, EmailNotification, Message, Notification


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "sender", "sender_side", "text"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # messages are sent through the chat, so counters stay right

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _through_service(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: Any,
    action: Callable[[Conversation, Any], Conversation],
    done: str,
) -> None:
    count = 0
    try:
        with transaction.atomic():  # all or nothing, like the inbox's bulk actions
            for conversation in queryset.order_by("pk"):
                action(conversation, request.user)
                count += 1
    except ChatError as exc:
        modeladmin.message_user(
            request, f"{exc.message} {_('Nothing was changed.')}", messages.ERROR
        )
        return
    modeladmin.message_user(request, done % {"count": count}, messages.SUCCESS)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "customer",
        "assigned_to",
        "status",
        "last_message_at",
        "unread_staff_count",
        "unread_user_count",
    ]
    list_filter = ["status", "last_message_at"]
    # Every field is state the services keep: shown, not edited.
    readonly_fields = [
        "customer",
        "assigned_to",
        "status",
        "last_message",
        "last_message_at",
        "unread_user_count",
        "unread_staff_count",
        "user_delivered_id",
        "user_read_id",
        "staff_delivered_id",
        "staff_read_id",
        "created_at",
        "updated_at",
    ]
    list_select_related = ["customer", "assigned_to"]
    inlines = [MessageInline]
    actions = ["close_conversations", "reopen_conversations"]

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # From the host's user model (or CUSTOMER_SEARCH_FIELDS), never a fixed username.
        return [f"customer__{field}" for field in names.customer_search_fields()]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers start conversations from the widget

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # view-only: state changes go through services (the actions below)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Messages go with their conversation even though they cannot be deleted alone.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(Message._meta.verbose_name)
        return deleted, model_count, perms_needed, protected

    @admin.action(description=gettext_lazy("Close selected conversations"))
    def close_conversations(self, request: HttpRequest, queryset: Any) -> None:
        _through_service(
            self, request, queryset, services.close, _("Closed %(count)d conversation(s).")
        )

    @admin.action(description=gettext_lazy("Reopen selected conversations"))
    def reopen_conversations(self, request: HttpRequest, queryset: Any) -> None:
        _through_service(
            self, request, queryset, services.reopen, _("Reopened %(count)d conversation(s).")
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """View-only: messages are sent through the chat (services.send_message)."""

    list_display = ["id", "conversation", "sender", "sender_side", "created_at"]
    list_filter = ["sender_side", "created_at"]
    search_fields = ["text"]
    readonly_fields = ["conversation", "sender", "sender_side", "text", "client_id", "created_at"]
    list_select_related = ["sender"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # alone; with its conversation, see ConversationAdmin


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "type", "created_at", "read_at"]
    list_filter = ["type", "read_at"]
    raw_id_fields = ["user"]


@admin.register(EmailNotification)
class EmailNotificationAdmin(admin.ModelAdmin):
    """Read-only: what was emailed, skipped (and why) or is still pending. The sender
    claims rows under a lock; an admin save could race it."""

    list_display = ["id", "recipient", "conversation", "status", "reason", "due_at", "processed_at"]
    list_filter = ["status", "reason", "recipient_side"]
    list_select_related = ["recipient", "conversation"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is written by the service layer alone."""

    list_display = ["at", "actor", "action", "conversation"]
    list_filter = ["action", "at"]
    list_select_related = ["actor"]

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return [f"actor__{field}" for field in names.customer_search_fields()]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
