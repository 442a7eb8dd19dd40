from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from . import names
from .models import AuditEntry, Conversation, Message, Notification


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "sender", "sender_side", "text"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # messages are sent through the chat, so counters stay right


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

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # From the host's user model (or CUSTOMER_SEARCH_FIELDS), never a fixed username.
        return [f"customer__{field}" for field in names.customer_search_fields()]

    raw_id_fields = ["customer", "assigned_to"]
    readonly_fields = [
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


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "sender", "sender_side", "created_at"]
    list_filter = ["sender_side", "created_at"]
    search_fields = ["text"]
    raw_id_fields = ["conversation", "sender"]
    readonly_fields = ["client_id", "created_at"]
    list_select_related = ["sender"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "type", "created_at", "read_at"]
    list_filter = ["type", "read_at"]
    raw_id_fields = ["user"]


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
