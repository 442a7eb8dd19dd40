"""Data model: conversations, messages, notifications and the staff audit log.

Read and delivered state is kept as watermarks per side on ``Conversation`` (the id of
the last message each side has been delivered / has read), not as one row per message;
``Message.status_for_recipient`` derives a message's status from them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Side(models.TextChoices):
    USER = "user", _("Customer")
    STAFF = "staff", _("Staff")

    @property
    def other(self) -> Side:
        return Side.STAFF if self is Side.USER else Side.USER


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def for_customer(self, user: Any) -> ConversationQuerySet:
        return self.filter(customer=user)

    def open(self) -> ConversationQuerySet:
        return self.filter(status=Conversation.Status.OPEN)


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="support_conversations",
        verbose_name=_("customer"),
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_support_conversations",
        verbose_name=_("assigned to"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OPEN
    )
    # Time of the last message; the creation time until there is one. Never null, so the
    # inbox can order and paginate on it with a keyset cursor.
    last_message_at = models.DateTimeField(_("last message at"), default=timezone.now)
    # Denormalised so the inbox renders snippets without a query per row.
    last_message = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    unread_user_count = models.PositiveIntegerField(_("unread by customer"), default=0)
    unread_staff_count = models.PositiveIntegerField(_("unread by staff"), default=0)
    # Watermarks: id of the last message delivered to / read by each side.
    user_delivered_id = models.BigIntegerField(default=0)
    user_read_id = models.BigIntegerField(default=0)
    staff_delivered_id = models.BigIntegerField(default=0)
    staff_read_id = models.BigIntegerField(default=0)
    # Sequence number of the newest message (0 before the first): send_message bumps it in
    # the UPDATE that moves the counters, under the row lock that serialises sends.
    last_seq = models.PositiveIntegerField(_("last sequence number"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-id"]
        indexes = [
            # Inbox: filter by status, newest activity first.
            models.Index(fields=["status", "-last_message_at", "-id"], name="sc_conv_status_last"),
            # Inbox "Assigned to me".
            models.Index(
                fields=["assigned_to", "status", "-last_message_at"], name="sc_conv_assigned"
            ),
            # Customer's own conversations.
            models.Index(fields=["customer", "-last_message_at"], name="sc_conv_customer"),
            # Inbox "Unread".
            models.Index(
                fields=["-last_message_at"],
                name="sc_conv_unread_staff",
                condition=models.Q(unread_staff_count__gt=0),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def unread_count(self, side: Side | str) -> int:
        return self.unread_user_count if side == Side.USER else self.unread_staff_count

    def watermarks(self) -> dict[str, int]:
        return {
            "user_delivered_id": self.user_delivered_id,
            "user_read_id": self.user_read_id,
            "staff_delivered_id": self.staff_delivered_id,
            "staff_read_id": self.staff_read_id,
        }


class Message(models.Model):
    class Status(models.TextChoices):
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="support_messages",
    )
    sender_side = models.CharField(max_length=10, choices=Side.choices)
    text = models.TextField()
    # ``text.render_text(text)``, rendered once when the message is stored (outside the
    # conversation's row lock) so reads never run bleach. Blank only for rows written
    # without it (raw inserts); ``payloads.message_html`` renders those on read.
    html = models.TextField(blank=True, default="", editable=False)
    # 1, 2, 3, ... per conversation, without holes, in commit order: a client that holds
    # seq H and sees H + 2 knows it missed one (docs/protocol.md, "Delivery guarantees").
    seq = models.PositiveIntegerField(_("sequence number"))
    # Generated by the client; a resend with the same id returns the stored message.
    client_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_id"], name="sc_msg_client_id_unique"
            ),
            # Also the index of "everything after seq N" (sync, REST ?after_seq=).
            models.UniqueConstraint(fields=["conversation", "seq"], name="sc_msg_conv_seq_unique"),
        ]
        indexes = [
            models.Index(fields=["conversation", "id"], name="sc_msg_conv_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} in {self.conversation_id}: {self.text[:40]}"

    def status_for_recipient(self, conversation: Conversation) -> str:
        """sent / delivered / read, as seen by the side that did not send it."""
        recipient = Side(self.sender_side).other
        read_id = (
            conversation.user_read_id if recipient == Side.USER else conversation.staff_read_id
        )
        delivered_id = (
            conversation.user_delivered_id
            if recipient == Side.USER
            else conversation.staff_delivered_id
        )
        if read_id >= self.pk:
            return self.Status.READ
        if delivered_id >= self.pk:
            return self.Status.DELIVERED
        return self.Status.SENT


class Notification(models.Model):
    class Type(models.TextChoices):
        MESSAGE_RECEIVED = "message_received", _("Message received")
        ASSIGNMENT = "assignment", _("Conversation assigned")
        CONVERSATION_CLOSED = "conversation_closed", _("Conversation closed")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="support_notifications"
    )
    type = models.CharField(max_length=40, choices=Type.choices)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    #: When an email covering it went out (message_received only; see notifications.py).
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                name="sc_notif_user_unread",
                condition=models.Q(read_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} for {self.user}"


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        REPLY = "reply", _("Replied")
        ASSIGN = "assign", _("Assigned")
        UNASSIGN = "unassign", _("Unassigned")
        CLOSE = "close", _("Closed")
        REOPEN = "reopen", _("Reopened")
        MARK_READ = "mark_read", _("Marked read")
        MARK_UNREAD = "mark_unread", _("Marked unread")

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="support_audit_entries",
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.SET_NULL,
        null=True,
        related_name="audit_entries",
    )
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor} {self.get_action_display()} #{self.conversation_id}"


class NotificationPreference(models.Model):
    """How one user wants to be told about chat activity. No row means the defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="support_chat_preferences",
    )
    #: Email for unread messages (customers: staff replies; staff: customer messages).
    email = models.BooleanField(_("email for unread messages"), default=True)
    #: Staff inbox: a sound for new activity (the browser needs one interaction first).
    sound = models.BooleanField(_("sound in the inbox"), default=False)
    #: Staff inbox: desktop notifications while the tab is hidden.
    desktop = models.BooleanField(_("desktop notifications"), default=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")

    def __str__(self) -> str:
        return f"Notification preferences of {self.user}"

    @classmethod
    def for_user(cls, user: Any) -> NotificationPreference:
        """The user's preferences; an unsaved instance with the defaults when none are stored."""
        found = cls.objects.filter(user_id=user.pk).first()
        return found if found is not None else cls(user_id=user.pk)


class EmailNotification(models.Model):
    """One email to one person about one conversation: the idempotency key of the send.

    While ``pending`` it is the "email this person at ``due_at`` if they still have not
    read" promise, at most one per (conversation, recipient) (a partial unique
    constraint), so later messages join it instead of scheduling more mail. The sender
    claims it with ``SELECT … FOR UPDATE SKIP LOCKED`` and marks it ``sent`` (or
    ``skipped`` with a reason) in the transaction that sends, so several workers, retries
    and the safety-net command send it exactly once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Skipped")

    class Reason(models.TextChoices):
        NONE = "", _("None")
        READ = "read", _("Already read")
        ONLINE = "online", _("Recipient online")
        STAFF_ONLINE = "staff_online", _("Staff online")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        NO_EMAIL = "no_email", _("No email address")
        NOT_ASSIGNED = "not_assigned", _("No longer assigned")
        NOT_STAFF = "not_staff", _("No longer staff")
        INACTIVE = "inactive", _("Inactive user")
        DISABLED = "disabled", _("Email turned off")
        NO_BASE_URL = "no_base_url", _("No base URL")
        HANDED_OFF = "handed_off", _("Left to the host's signal receivers")
        FAILED = "failed", _("Sending failed too often")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="email_notifications"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="support_email_notifications",
    )
    # The side the recipient reads for: its read watermark decides "still unread".
    recipient_side = models.CharField(max_length=10, choices=Side.choices)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # Not sent before this time (message time + EMAIL_DELAY).
    due_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    # The newest message the email covered; the next email starts after it.
    last_message_id = models.BigIntegerField(default=0)
    message_count = models.PositiveIntegerField(default=0)
    # The Message-ID header used: later emails to the same person about the same
    # conversation reply to it (In-Reply-To, References), so mail clients thread them.
    message_id_header = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = _("email notification")
        verbose_name_plural = _("email notifications")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "recipient"],
                condition=models.Q(status="pending"),
                name="sc_email_one_pending",
            ),
        ]
        indexes = [
            # The safety-net command: pending rows that are due.
            models.Index(
                fields=["due_at"], name="sc_email_pending_due", condition=models.Q(status="pending")
            ),
            # The thread of earlier emails to one recipient about one conversation.
            models.Index(fields=["conversation", "recipient", "-id"], name="sc_email_thread"),
        ]

    def __str__(self) -> str:
        return f"Email to {self.recipient} about #{self.conversation_id} ({self.status})"
