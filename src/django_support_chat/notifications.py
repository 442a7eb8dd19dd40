"""Email to people who are not online: who gets one, when, and sending it exactly once.

After a message is committed, ``schedule_for_message`` makes sure each recipient it should
reach has one pending ``EmailNotification`` due ``EMAIL_DELAY`` seconds later (a later
message joins the pending one: one email covers every unread message since the last).
On commit a task is enqueued for the due time (``tasks.send_email_notification``);
``support_chat_send_notifications`` sends whatever is due when a backend cannot defer or
a task was lost.

``deliver`` decides at send time, under a row lock taken with ``SKIP LOCKED``: nothing
before ``due_at``; nothing if the recipient has read the messages, is online (presence),
has turned email off, has no address, or is no longer the right staff member. The row
becomes ``sent`` in the transaction that sends, so concurrent workers and retries send
one email; the same transaction stamps ``emailed_at`` on the recipient's
``message_received`` notifications of the messages it covers. See docs/notifications.md.
"""

from __future__ import annotations

import email.policy
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import django
from asgiref.sync import async_to_sync
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from . import compat, names, presence, roles, signals
from .conf import chat_settings
from .models import (
    Conversation,
    EmailNotification,
    Message,
    Notification,
    NotificationPreference,
    Side,
)
from .services import staff_user_ids

logger = logging.getLogger("django_support_chat.notifications")

UNSUBSCRIBE_SALT = "django_support_chat.unsubscribe"
CUSTOMER_FRAGMENT = "#support-chat"
# Sending failures before a row is given up (status skipped, reason failed).
MAX_ATTEMPTS = 5

Status = EmailNotification.Status
Reason = EmailNotification.Reason


def email_settings() -> dict[str, Any]:
    return chat_settings.EMAIL_NOTIFICATIONS  # type: ignore[no-any-return]


def email_enabled() -> bool:
    return bool(email_settings().get("enabled", True))


# --- scheduling ------------------------------------------------------------------------------


def _to_every_staff(message: Message, conversation: Conversation) -> bool:
    return message.sender_side != Side.STAFF and conversation.assigned_to_id is None


def recipients_for(
    message: Message, conversation: Conversation, excluding: Any = None
) -> list[tuple[Any, Side]]:
    """Who a new message may email, as ``(user id, side)`` (the rules of the issue); ids,
    so that a send never loads the customer, the assignee or the staff for this.
    ``excluding`` (user ids, a queryset or a list) is left out of the staff list."""
    rules = email_settings()
    if message.sender_side == Side.STAFF:
        if not rules.get("customer_replies", True):
            return []
        return [(conversation.customer_id, Side.USER)]
    if conversation.assigned_to_id is not None:
        if not rules.get("assigned_staff", True):
            return []
        return [(conversation.assigned_to_id, Side.STAFF)]
    if not rules.get("unassigned_to_all_staff", True):
        return []
    return [(pk, Side.STAFF) for pk in staff_user_ids(excluding) if pk != message.sender_id]


# Email windows this process knows to be open: (conversation id and creation time, the
# recipient's id or EVERY_STAFF) -> the earliest due time of the pending rows covering it.
# A pending row stays pending until its due time (``deliver`` sends nothing earlier, and
# nothing else changes it), so until then a new message has nothing to schedule and the
# check costs no query. Only committed rows are remembered (never inside a transaction).
EVERY_STAFF = "staff"
# Other workers' clocks may run ahead: a window counts as closed this long before its due.
WINDOW_MARGIN = timedelta(seconds=10)
WINDOWS_KEPT = 10_000
_windows: OrderedDict[tuple[Any, Any], Any] = OrderedDict()
_windows_lock = threading.Lock()


def _window_open(key: tuple[Any, Any], now: Any) -> bool:
    with _windows_lock:
        due = _windows.get(key)
        if due is None:
            return False
        if now < due - WINDOW_MARGIN:
            return True
        del _windows[key]
        return False


def _remember_window(key: tuple[Any, Any], due: Any) -> None:
    if due is None or transaction.get_connection().in_atomic_block:
        return
    with _windows_lock:
        _windows[key] = due
        _windows.move_to_end(key)
        while len(_windows) > WINDOWS_KEPT:
            _windows.popitem(last=False)


def forget_windows() -> None:
    """Drop what this process remembers of open email windows."""
    with _windows_lock:
        _windows.clear()


def schedule_for_message(message: Message, conversation: Conversation) -> list[EmailNotification]:
    """Make sure each recipient of ``message`` has a pending email; returns the new rows.

    Called after the message is committed (the ``message_created`` receiver), on every
    send. An existing pending row is left as it is: its email will cover this message too,
    and its due time keeps the "one email per delay window" rule. The first message of a
    window asks one query (for an unassigned conversation, the staff without a pending
    email here) and creates the rows; the next ones ask none while this process knows the
    window is open (staff who become staff meanwhile join from the next window).
    """
    if not email_enabled():
        return []
    now = timezone.now()
    every_staff = _to_every_staff(message, conversation)
    if every_staff:
        if not email_settings().get("unassigned_to_all_staff", True):
            return []
        key = ((conversation.pk, conversation.created_at), EVERY_STAFF)
        if _window_open(key, now):
            return []  # the usual case: no query, and no queryset built for one
        waiting = _waiting(conversation)
        ids = waiting.values_list("recipient_id", flat=True)
        todo = recipients_for(message, conversation, excluding=ids)  # one query
        earliest = None
        if not todo:  # every staff member waits already: until when, once per window
            earliest = waiting.aggregate(due=Min("due_at"))["due"]
    else:
        todo = recipients_for(message, conversation)
        if not todo:
            return []
        key = ((conversation.pk, conversation.created_at), todo[0][0])
        if _window_open(key, now):
            return []
        pending = dict(_waiting(conversation).values_list("recipient_id", "due_at"))
        earliest = min((pending[r] for r, _ in todo if r in pending), default=None)
        todo = [r for r in todo if r[0] not in pending]
    due_at = now + timedelta(seconds=chat_settings.EMAIL_DELAY)
    created = _create_pending_rows(conversation, todo, due_at)
    if not every_staff and created:
        earliest = due_at
    _remember_window(key, earliest)
    return created


def _waiting(conversation: Conversation) -> Any:
    return EmailNotification.objects.filter(
        conversation=conversation, status=Status.PENDING
    ).order_by()


def _create_pending_rows(
    conversation: Conversation, todo: list[tuple[Any, Side]], due_at: Any
) -> list[EmailNotification]:
    """The pending rows of ``todo``: one INSERT and one task for all of them (the staff
    of an unassigned conversation), or one at a time if a concurrent message created some
    first (or the database cannot return the ids of a bulk insert)."""
    if len(todo) > 1 and transaction.get_connection().features.can_return_rows_from_bulk_insert:
        rows = [
            EmailNotification(
                conversation=conversation, recipient_id=r, recipient_side=side, due_at=due_at
            )
            for r, side in todo
        ]
        try:
            with transaction.atomic():
                EmailNotification.objects.bulk_create(rows)
                transaction.on_commit(lambda: enqueue_many(rows), robust=True)
        except IntegrityError:
            pass  # the partial unique constraint: one at a time, below
        else:
            return rows
    created = []
    for recipient_id, side in todo:
        row = _create_pending(conversation, recipient_id, side, due_at)
        if row is not None:
            created.append(row)
    return created


def _create_pending(
    conversation: Conversation, recipient_id: Any, side: Side, due_at: Any
) -> EmailNotification | None:
    try:
        with transaction.atomic():
            row = EmailNotification.objects.create(
                conversation=conversation,
                recipient_id=recipient_id,
                recipient_side=side,
                due_at=due_at,
            )
            transaction.on_commit(lambda: enqueue(row), robust=True)
    except IntegrityError:
        # A concurrent message created it first (the partial unique constraint).
        return None
    return row


def enqueue(row: EmailNotification) -> bool:
    """Enqueue the send for ``row.due_at`` if the backend can defer; never raises.

    Without deferral (ImmediateBackend would run it at once, too early) the row waits for
    ``support_chat_send_notifications``; so does a row whose enqueue failed.
    """
    return enqueue_many([row])


def enqueue_many(rows: list[EmailNotification]) -> bool:
    """``enqueue`` for rows due at the same time: one task (``send_email_notifications``)
    for all of them; one row gets ``send_email_notification``. Never raises."""
    if not compat.TASKS_AVAILABLE or not rows:
        return False
    from . import tasks

    try:
        backend = compat.task_backends[chat_settings.EMAIL_TASK_BACKEND]
        if not backend.supports_defer:
            return False
        run_after = min(row.due_at for row in rows)
        if len(rows) == 1:
            tasks.send_email_notification.using(
                backend=chat_settings.EMAIL_TASK_BACKEND, run_after=run_after
            ).enqueue(rows[0].pk)
        else:
            tasks.send_email_notifications.using(
                backend=chat_settings.EMAIL_TASK_BACKEND, run_after=run_after
            ).enqueue([row.pk for row in rows])
    except Exception:
        logger.exception(
            "Could not enqueue email notification(s) %s; support_chat_send_notifications "
            "will send them",
            ",".join(str(row.pk) for row in rows),
        )
        return False
    return True


# --- sending ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What ``deliver`` did with a row: ``"sent"``, ``"skipped"`` (with ``reason``),
    ``"early"`` (not due yet), ``"gone"`` (not pending, or locked by another worker) or
    ``"error"`` (sending failed; the row stays pending for a retry)."""

    result: str
    reason: str = ""
    row: EmailNotification | None = None


def deliver(pk: int) -> Outcome:
    """Send (or skip) pending email ``pk`` if it is due. Safe to call any number of times
    from any number of processes at once: one of them sends, the others find it gone."""
    with transaction.atomic():
        # Lock this row only (of=self): locking the joined conversation too would stall
        # sends to it while the email goes out, and SKIP LOCKED would then skip the row.
        row = (
            EmailNotification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("conversation", "recipient")
            .filter(pk=pk, status=Status.PENDING)
            .first()
        )
        if row is None:
            return Outcome("gone")
        if row.due_at > timezone.now():
            outcome = Outcome("early", row=row)
        else:
            outcome = _decide_and_send(row)
    if outcome.result == "early" or (outcome.result == "error" and outcome.row is not None):
        # A task that ran before the due time (clock skew), or a retry after a failure:
        # wait for the due time again (or for the command).
        enqueue(outcome.row)  # type: ignore[arg-type]
    return outcome


def send_due(limit: int | None = None) -> dict[str, int]:
    """Deliver every pending row that is due (the management command); counts by result."""
    due = EmailNotification.objects.filter(status=Status.PENDING, due_at__lte=timezone.now())
    ids = list(due.order_by("due_at", "pk").values_list("pk", flat=True)[:limit])
    counts: dict[str, int] = {}
    for pk in ids:
        outcome = deliver(pk)
        key = outcome.result if outcome.result != "skipped" else f"skipped:{outcome.reason}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def _finish(row: EmailNotification, status: str, reason: str = "", **fields: Any) -> None:
    row.status = status
    row.reason = reason
    row.processed_at = timezone.now()
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()


def _skip(row: EmailNotification, reason: str) -> Outcome:
    _finish(row, Status.SKIPPED, reason)
    log = logger.warning if reason in (Reason.NO_EMAIL, Reason.NO_BASE_URL) else logger.info
    log(
        "Email notification %s to user %s about conversation %s skipped: %s",
        row.pk,
        row.recipient_id,
        row.conversation_id,
        reason,
    )
    return Outcome("skipped", reason, row)


def unread_messages(row: EmailNotification) -> list[Message]:
    """The messages this email covers: the other side's, newer than both the recipient's
    read watermark and the last email sent to them about this conversation, less those
    whose notification the recipient has read (dismissed without opening the chat)."""
    conversation = row.conversation
    side = Side(row.recipient_side)
    read_id = conversation.user_read_id if side == Side.USER else conversation.staff_read_id
    last_sent = previous_emails(row).values_list("last_message_id", flat=True).first() or 0
    messages = list(
        Message.objects.filter(
            conversation=conversation,
            sender_side=side.other,
            id__gt=max(read_id, last_sent),
        )
        .select_related("sender")
        .order_by("id")
    )
    if not messages:
        return messages
    read = set(
        _message_notifications(row, messages)
        .filter(read_at__isnull=False)
        .values_list("payload__message_id", flat=True)
    )
    return [message for message in messages if message.pk not in read]


def _message_notifications(row: EmailNotification, messages: list[Message]) -> Any:
    """The recipient's ``message_received`` notifications of these messages (services._notify
    keeps the conversation and message ids in the payload)."""
    return Notification.objects.filter(
        user_id=row.recipient_id,
        type=Notification.Type.MESSAGE_RECEIVED,
        payload__conversation_id=row.conversation_id,
        payload__message_id__in=[message.pk for message in messages],
    )


def _stamp_notifications(row: EmailNotification, messages: list[Message]) -> None:
    """Record on the recipient's unread notifications of these messages that an email
    told them (one UPDATE, in the sending transaction); read ones stay as they are."""
    _message_notifications(row, messages).filter(
        read_at__isnull=True, emailed_at__isnull=True
    ).update(emailed_at=row.processed_at)


def previous_emails(row: EmailNotification) -> Any:
    """Earlier emails sent to the same recipient about the same conversation, newest first."""
    return EmailNotification.objects.filter(
        conversation_id=row.conversation_id,
        recipient_id=row.recipient_id,
        status=Status.SENT,
    ).order_by("-id")


def email_address(user: Any) -> str:
    field = getattr(get_user_model(), "EMAIL_FIELD", None) or ""
    if not field:
        return ""
    try:
        value = getattr(user, field, "")
    except Exception:
        return ""
    return str(value or "").strip()


def _online(row: EmailNotification) -> str:
    """The presence reason to skip, or "" when the recipient is not online."""
    everyone = row.recipient_side == Side.STAFF and row.conversation.assigned_to_id is None

    async def ask() -> str:
        store = presence.get_presence_store()
        try:
            if row.recipient_id in await store.online([row.recipient_id]):
                return Reason.ONLINE
            if everyone and await store.staff_online():
                return Reason.STAFF_ONLINE
            return ""
        finally:
            await store.aclose()  # this loop ends with the call

    try:
        return async_to_sync(ask)()
    except Exception:
        # Presence unknown (Redis away): better an email too many than none.
        logger.warning("Presence unavailable; email notification %s goes out", row.pk)
        return ""


def _rules_reason(row: EmailNotification) -> str:
    recipient = row.recipient
    if not email_enabled():
        return Reason.DISABLED
    if not getattr(recipient, "is_active", True):
        return Reason.INACTIVE
    if row.recipient_side == Side.STAFF:
        if not roles.is_staff(recipient):
            return Reason.NOT_STAFF
        assignee = row.conversation.assigned_to_id
        if assignee is not None and assignee != recipient.pk:
            return Reason.NOT_ASSIGNED
    if not NotificationPreference.for_user(recipient).email:
        return Reason.UNSUBSCRIBED
    return ""


def _decide_and_send(row: EmailNotification) -> Outcome:
    reason = _rules_reason(row)
    if reason:
        return _skip(row, reason)
    messages = unread_messages(row)
    if not messages:
        return _skip(row, Reason.READ)
    reason = _online(row)
    if reason:
        return _skip(row, reason)
    builtin = bool(email_settings().get("builtin_email", True))
    address = email_address(row.recipient)
    if builtin and not address:
        return _skip(row, Reason.NO_EMAIL)
    base = base_url()
    if builtin and not base:
        return _skip(row, Reason.NO_BASE_URL)
    last_id = messages[-1].pk
    if builtin:
        try:
            header = _send_email(row, messages, address, base)
        except Exception as exc:
            return _failed(row, exc)
        _finish(
            row,
            Status.SENT,
            last_message_id=last_id,
            message_count=len(messages),
            message_id_header=header,
        )
    else:
        _finish(
            row,
            Status.SENT,
            Reason.HANDED_OFF,
            last_message_id=last_id,
            message_count=len(messages),
        )
    _stamp_notifications(row, messages)
    _signal_on_commit(row, messages)
    return Outcome("sent", row.reason, row)


def _failed(row: EmailNotification, exc: Exception) -> Outcome:
    logger.exception("Sending email notification %s failed", row.pk)
    row.attempts += 1
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        _finish(row, Status.SKIPPED, Reason.FAILED)
        return Outcome("skipped", Reason.FAILED, row)
    # Try again later, backing off; the row stays pending.
    row.due_at = timezone.now() + timedelta(seconds=60 * row.attempts)
    row.save(update_fields=["attempts", "last_error", "due_at"])
    return Outcome("error", row=row)


def _signal_on_commit(row: EmailNotification, messages: list[Message]) -> None:
    def send() -> None:
        for receiver, result in signals.notification_due.send_robust(
            sender=EmailNotification,
            recipient=row.recipient,
            conversation=row.conversation,
            messages=messages,
            channel="email",
            notification=row,
        ):
            if isinstance(result, Exception):
                logger.error("notification_due receiver %r failed", receiver, exc_info=result)

    transaction.on_commit(send, robust=True)


# --- the email -------------------------------------------------------------------------------


def base_url() -> str:
    """Scheme and host for absolute links: EMAIL_BASE_URL, else the current Site."""
    configured = chat_settings.EMAIL_BASE_URL
    if configured:
        return str(configured).rstrip("/")
    if apps.is_installed("django.contrib.sites"):
        try:
            from django.contrib.sites.models import Site

            domain = Site.objects.get_current().domain
        except Exception:
            logger.exception("No current Site for the email links")
            return ""
        if domain:
            return domain.rstrip("/") if "://" in domain else f"https://{domain}"
    return ""


def absolute(base: str, path: str) -> str:
    return urljoin(base + "/", path)


def unsubscribe_token(user: Any) -> str:
    return signing.dumps({"u": str(user.pk)}, salt=UNSUBSCRIBE_SALT, compress=True)


def user_from_token(token: str) -> Any | None:
    """The user a token was made for, or None for a forged, damaged or stale token."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or "u" not in data:
        return None
    User = get_user_model()
    try:
        return User._default_manager.filter(pk=data["u"]).first()
    except (ValueError, TypeError):
        return None


def unsubscribe_url(user: Any, base: str) -> str:
    try:
        path = reverse("support_chat_mail:unsubscribe", args=[unsubscribe_token(user)])
    except NoReverseMatch:
        return ""
    return absolute(base, path)


def conversation_url(row: EmailNotification, base: str) -> str:
    if row.recipient_side == Side.USER:
        return absolute(base, str(chat_settings.EMAIL_CUSTOMER_URL)) + CUSTOMER_FRAGMENT
    try:
        return absolute(
            base, reverse("support_chat_inbox:conversation", args=[row.conversation_id])
        )
    except NoReverseMatch:
        return absolute(base, "/")


def sender_name(message: Message, recipient_side: str) -> str:
    """Staff are named to customers by ``names.staff_name`` (never a login or email)."""
    if message.sender_side == Side.STAFF:
        return names.staff_name(message.sender) if message.sender else names.team_name()
    if message.sender is None:
        return ""
    return names.customer_name(message.sender)


# Headers written on one line, never folded. Python's email package would turn a long
# List-Unsubscribe URL (no space to fold at) into RFC 2047 encoded words, which mail
# clients do not read as a URL; RFC 5322 allows lines up to 998 characters.
_ONE_LINE_HEADERS = {"list-unsubscribe"}


class _OneLinePolicy(email.policy.EmailPolicy):
    def fold(self, name: str, value: Any) -> str:
        if name.lower() in _ONE_LINE_HEADERS:
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)  # type: ignore[no-any-return]

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in _ONE_LINE_HEADERS:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)  # type: ignore[no-any-return]


class ChatEmail(EmailMultiAlternatives):
    """The notification email: as Django's, with List-Unsubscribe kept on one line."""

    def message(self, *args: Any, **kwargs: Any) -> Any:
        if django.VERSION >= (6, 0):  # the email.message.EmailMessage API (policy=)
            policy = kwargs.get("policy", email.policy.default)
            if isinstance(policy, email.policy.EmailPolicy) and not isinstance(
                policy, _OneLinePolicy
            ):
                kwargs["policy"] = _OneLinePolicy(**vars(policy))
        return super().message(*args, **kwargs)


def _send_email(row: EmailNotification, messages: list[Message], address: str, base: str) -> str:
    templates = chat_settings.EMAIL_TEMPLATES
    domain = urlsplit(base).hostname or "localhost"
    header = make_msgid("support-chat", domain=domain)
    previous = list(previous_emails(row).values_list("message_id_header", flat=True)[:20])
    previous = [value for value in previous if value]
    recipient = row.recipient
    context = {
        "recipient_name": (
            names.customer_name(recipient)
            if row.recipient_side == Side.USER
            else names.staff_name(recipient)
        ),
        "for_staff": row.recipient_side == Side.STAFF,
        "conversation": row.conversation,
        "customer_name": names.customer_name(row.conversation.customer),
        "messages": [
            {
                "text": message.text,
                "sender": sender_name(message, row.recipient_side),
                "at": message.created_at,
            }
            for message in messages
        ],
        "count": len(messages),
        "url": conversation_url(row, base),
        "unsubscribe_url": unsubscribe_url(recipient, base),
        "team_name": names.team_name(),
    }
    subject = " ".join(render_to_string(templates["subject"], context).split())
    headers = {"Message-ID": header}
    if previous:
        # Oldest first in References; the newest is the one this replies to.
        headers["In-Reply-To"] = previous[0]
        headers["References"] = " ".join(reversed(previous))
    if context["unsubscribe_url"]:
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = ChatEmail(
        subject=subject,
        body=render_to_string(templates["text"], context),
        from_email=chat_settings.EMAIL_FROM or settings.DEFAULT_FROM_EMAIL,
        to=[address],
        headers=headers,
    )
    message.attach_alternative(render_to_string(templates["html"], context), "text/html")
    message.send()
    return header
