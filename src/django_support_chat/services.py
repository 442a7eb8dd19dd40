"""The domain actions: the only code that changes chat state.

Every function runs in one transaction, moves counters with ``F()`` expressions (or
plain values read under the conversation's row lock) and publishes its events after
commit. Callers (REST views, consumers, inbox views,
management commands) check who may act; services validate input and keep state right.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from . import events, metrics, names, roles, signals, statements
from .exceptions import ConversationClosed, PermissionDenied, ValidationError
from .models import AuditEntry, Conversation, Message, Notification, NotificationPreference, Side
from .payloads import conversation_data, message_data, notification_data
from .text import clean_text, render_text

signals_logger = logging.getLogger("django_support_chat.signals")


def side_of(user: Any, conversation: Conversation) -> Side:
    """The side ``user`` speaks for in ``conversation``; raises if neither."""
    if conversation.customer_id == user.pk:
        return Side.USER
    if roles.is_staff(user):
        return Side.STAFF
    raise PermissionDenied(_("You may not take part in this conversation."))


def _audit(actor: Any, action: str, conversation: Conversation, **details: Any) -> None:
    statements.insert(
        AuditEntry(actor=actor, action=action, conversation=conversation, details=details)
    )


def _notify(conversation: Conversation, user_id: Any, type_: str, **payload: Any) -> Notification:
    """Write a Notification row for ``user_id`` about ``conversation`` and tell that user's
    sockets (``notification:new``) once it commits. The event carries the conversation as
    the recipient's side sees it (a toast names the customer); built after the commit,
    outside the row lock."""
    notification = Notification(
        user_id=user_id, type=type_, payload={"conversation_id": conversation.pk, **payload}
    )
    statements.insert(notification)
    side = Side.USER if user_id == conversation.customer_id else Side.STAFF
    events.publish(
        [events.user_group(user_id)],
        events.NOTIFICATION_NEW,
        lambda: (
            notification_data(notification)
            | {"conversation": conversation_data(conversation, side)}
        ),
    )
    return notification


def _send_on_commit(signal: Any, sender: type, **kwargs: Any) -> None:
    """Send a public signal once the outermost transaction commits (never if it rolls
    back). A failing receiver is logged and the other receivers still run; the stored
    change stands."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=sender, **kwargs):
            if isinstance(result, Exception):
                signals_logger.error("Signal receiver %r failed", receiver, exc_info=result)

    transaction.on_commit(send, robust=True)


def _groups(conversation: Conversation) -> list[str]:
    return [
        events.conversation_group(conversation.pk),
        events.STAFF_GROUP,
    ]


def _publish_conversation(conversation: Conversation, change: str, **extra: Any) -> None:
    events.publish(
        [events.STAFF_GROUP, events.conversation_group(conversation.pk)],
        events.CONVERSATION_UPDATED,
        lambda: {"change": change, "conversation": conversation_data(conversation), **extra},
    )


def _latest_conversation(user: Any) -> Conversation | None:
    return Conversation.objects.for_customer(user).order_by("-last_message_at", "-id").first()


def get_or_start_conversation(user: Any) -> tuple[Conversation, bool]:
    """The customer's latest conversation, or a new one if they have none.

    One conversation per customer even when first requests race (two tabs flushing the
    offline queue): the customer's user row is locked before the second look, so a
    concurrent first call waits and then finds the conversation this one created. SQLite
    has no row locks but serialises write transactions (``transaction_mode`` IMMEDIATE).
    """
    conversation = _latest_conversation(user)
    if conversation is not None:
        return conversation, False
    User = get_user_model()
    with transaction.atomic():
        User._base_manager.select_for_update().filter(pk=user.pk).values_list("pk").first()
        conversation = _latest_conversation(user)
        if conversation is not None:
            return conversation, False
        conversation = Conversation.objects.create(customer=user)
        events.publish(
            [events.STAFF_GROUP],
            events.CONVERSATION_NEW,
            lambda: {"conversation": conversation_data(conversation)},
        )
        _send_on_commit(signals.conversation_started, Conversation, conversation=conversation)
    return conversation, True


def parse_client_id(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError({"client_id": [_("client_id must be a UUID generated by the client.")]})


def _lock_with_customer(queryset: Any) -> Any:
    """``select_for_update`` of the conversation row, with its customer loaded by the same
    statement (the customer's notification event names them) where the database can lock
    the conversation row alone; elsewhere the customer loads when needed."""
    features = connections[queryset.db].features
    if features.has_select_for_update_of:
        return queryset.select_related("customer").select_for_update(of=("self",))
    if not features.has_select_for_update:  # SQLite: no row locks to widen
        return queryset.select_related("customer").select_for_update()
    return queryset.select_for_update()


def send_message(
    conversation: Conversation, sender: Any, text: Any, client_id: Any
) -> tuple[Message, bool]:
    """Store a message once per ``client_id``; returns ``(message, created)``.

    A customer writing into a closed conversation reopens it; staff must reopen first.
    """
    try:
        text = clean_text(text)
    except ValidationError as exc:
        raise ValidationError({"text": exc.messages}) from None
    # Rendered once, here, before the row lock: reads use the stored copy, never bleach.
    html = render_text(text)
    client_id = parse_client_id(client_id)
    side = side_of(sender, conversation)

    reopened = False
    try:
        with transaction.atomic():
            # Lock the conversation first: sends to one conversation are serialised, so
            # message ids grow in commit order and "everything after id N" misses nothing.
            # A resend is not looked for here (a subquery on every send for a rare case):
            # the unique (conversation, sender, client_id) constraint refuses its INSERT,
            # the transaction rolls back and the stored message is returned (below).
            if side == Side.USER:
                # The customer is the sender: no join for it. An assignee loads only if an
                # event names it (a notification to the assignee, after the commit).
                locked = statements.get(
                    Conversation.objects.select_for_update(), conversation.pk, "lock"
                )
                locked.customer = sender
            else:
                locked = statements.get(
                    _lock_with_customer(Conversation.objects.all()),
                    conversation.pk,
                    "lock+customer",
                )
                if locked.assigned_to_id == sender.pk:
                    locked.assigned_to = sender  # another assignee loads if an event names it
            if not locked.is_open:
                if side == Side.STAFF:
                    if _stored(conversation, sender, client_id) is not None:
                        raise _Resent  # stored before the conversation was closed
                    raise ConversationClosed(
                        _("This conversation is closed. Reopen it before replying.")
                    )
                reopened = True
            now = timezone.now()
            message = Message(
                conversation=locked,
                sender=sender,
                sender_side=side,
                text=text,
                html=html,
                client_id=client_id,
                created_at=now,
                # Under the row lock: 1, 2, 3, ... per conversation, no holes, in commit
                # order (a rolled-back send rolls back last_seq with it).
                seq=locked.last_seq + 1,
            )
            statements.insert(message)
            prefix, other = ("user", "staff") if side == Side.USER else ("staff", "user")
            # The sender has obviously seen everything up to its own message (the newest:
            # the row lock serialises sends), so its side has nothing unread. A customer
            # message always leaves the conversation open.
            changes: dict[str, Any] = {
                f"{prefix}_read_id": message.pk,
                f"{prefix}_delivered_id": message.pk,
                f"unread_{prefix}_count": 0,
                "status": Conversation.Status.OPEN,
                "last_message": message,
                "last_seq": message.seq,
                "last_message_at": now,
                "updated_at": now,
            }
            counter = f"unread_{other}_count"
            # The other side had read everything before this message (a conversation
            # flagged by mark_unread included): the count is 1, not the flag + 1.
            previous_last = locked.last_message_id or 0
            all_read = getattr(locked, f"{other}_read_id") >= previous_last
            # Plain values, like seq: the row is locked (SQLite has one writer at a time),
            # so what was read is what is there; an expression costs more to compile.
            changes[counter] = 1 if all_read else getattr(locked, counter) + 1
            statements.update(Conversation, locked.pk, changes)
            # The same values in memory, without reading the row back: it is locked.
            for name, value in changes.items():
                setattr(locked, name, value)
            message.conversation = locked
            if side == Side.STAFF:
                _audit(sender, AuditEntry.Action.REPLY, locked, message_id=message.pk)
                _notify(
                    locked,
                    locked.customer_id,
                    Notification.Type.MESSAGE_RECEIVED,
                    message_id=message.pk,
                )
            elif locked.assigned_to_id is not None:
                _notify(
                    locked,
                    locked.assigned_to_id,
                    Notification.Type.MESSAGE_RECEIVED,
                    message_id=message.pk,
                )
            # The counters ride on message:new: no unread:update for a send. The payload is
            # built after the commit, outside the row lock.
            events.publish(
                _groups(locked),
                events.MESSAGE_NEW,
                lambda: (
                    {"conversation_id": locked.pk, "message": message_data(message, locked)}
                    | _unread_counts(locked)
                ),
            )
            if reopened:
                _publish_conversation(locked, "reopened")
            _send_on_commit(signals.message_created, Message, message=message, conversation=locked)
            transaction.on_commit(metrics.MESSAGES_STORED.labels(side=side.value).inc)
    except (IntegrityError, _Resent):
        # A resend: this client_id is stored already (or a concurrent send with it
        # committed while this one waited for the row lock; on SQLite, which has no row
        # lock, at any time). Nothing of this call was written.
        existing = _stored(conversation, sender, client_id)
        if existing is None:
            raise
        # The caller's instance gets the conversation as it is now (a retry's reply shows
        # the message's current status).
        _copy_state(
            Conversation.objects.select_related("customer", "assigned_to").get(pk=conversation.pk),
            conversation,
        )
        return existing, False
    _copy_state(locked, conversation)
    return message, True


class _Resent(Exception):
    """Raised inside send_message's transaction for a resend found before the INSERT."""


def _stored(conversation: Conversation, sender: Any, client_id: uuid.UUID) -> Message | None:
    return Message.objects.filter(
        conversation=conversation, sender=sender, client_id=client_id
    ).first()


def _copy_state(source: Conversation, target: Conversation) -> None:
    """Refresh the caller's instance with the state just written."""
    if source is not target:
        for field in source._meta.concrete_fields:
            setattr(target, field.attname, getattr(source, field.attname))


def _unread_counts(conversation: Conversation) -> dict[str, int]:
    return {
        "unread_user_count": conversation.unread_user_count,
        "unread_staff_count": conversation.unread_staff_count,
    }


def _publish_unread(conversation: Conversation) -> None:
    events.publish(
        # The customer's sockets (every conversation: the badge is a total) and the lobby;
        # not the conversation group, or a customer socket would get it twice.
        [events.user_group(conversation.customer_id), events.STAFF_GROUP],
        events.UNREAD_UPDATE,
        {"conversation_id": conversation.pk} | _unread_counts(conversation),
    )


def mark_read(conversation: Conversation, reader: Any, up_to_id: int | None = None) -> Conversation:
    """Move the reader's side read (and delivered) watermark and recount its unread messages.

    ``up_to_id`` defaults to the newest message. Watermarks never move backwards.
    """
    side = side_of(reader, conversation)
    prefix = "user" if side == Side.USER else "staff"
    read_field, counter = f"{prefix}_read_id", f"unread_{prefix}_count"
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        newest = _newest_id(locked)
        target = newest if up_to_id is None else max(0, min(int(up_to_id), newest))
        had_unread = getattr(locked, counter)
        new_read = max(getattr(locked, read_field), target)
        # Reading the conversation reads what the reader was notified of in it (the
        # messages up to the new watermark, the assignment, the closing): one UPDATE, even
        # when no message was unread. A message after the watermark stays unread.
        Notification.objects.filter(
            Q(payload__message_id__isnull=True) | Q(payload__message_id__lte=new_read),
            user=reader,
            read_at__isnull=True,
            payload__conversation_id=locked.pk,
        ).update(read_at=timezone.now())
        if new_read == getattr(locked, read_field) and not had_unread:
            _copy_state(locked, conversation)
            return conversation
        remaining = Message.objects.filter(
            conversation=locked, id__gt=new_read, sender_side=side.other
        ).count()
        Conversation.objects.filter(pk=locked.pk).update(
            **{
                read_field: new_read,
                f"{prefix}_delivered_id": Greatest(F(f"{prefix}_delivered_id"), new_read),
                counter: remaining,
            }
        )
        locked.refresh_from_db()
        if side == Side.STAFF and had_unread != remaining:
            _audit(reader, AuditEntry.Action.MARK_READ, locked, up_to_id=new_read)
        events.publish(
            [events.conversation_group(locked.pk), events.STAFF_GROUP],
            events.MESSAGE_READ,
            {
                "conversation_id": locked.pk,
                "side": side.value,
                "up_to_id": new_read,
                "reader_id": reader.pk,
            },
        )
        _publish_unread(locked)
    _copy_state(locked, conversation)
    return conversation


def mark_notifications_read(user: Any, ids: Any = None) -> int:
    """Mark ``user``'s unread notifications read: those with these ``ids``, or all when
    ``ids`` is ``None``. Other users' ids are ignored. Returns how many were marked."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())


PREFERENCE_FIELDS = ("email", "sound", "desktop")


def update_notification_preferences(user: Any, **changes: bool) -> NotificationPreference:
    """Store ``user``'s notification choices (``email``, ``sound``, ``desktop``); the
    others keep their value. Creates the row on the first change."""
    unknown = set(changes) - set(PREFERENCE_FIELDS)
    if unknown:
        raise ValidationError({name: [_("Unknown preference.")] for name in sorted(unknown)})
    for name, value in changes.items():
        if not isinstance(value, bool):
            raise ValidationError({name: [_("Must be true or false.")]})
    with transaction.atomic():
        preference, _created = NotificationPreference.objects.select_for_update().get_or_create(
            user_id=user.pk, defaults=changes
        )
        if not _created and changes:
            for name, value in changes.items():
                setattr(preference, name, value)
            preference.save(update_fields=[*changes, "updated_at"])
    return preference


def _newest_id(conversation: Conversation) -> int:
    return (
        Message.objects.filter(conversation=conversation)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
        or 0
    )


def mark_unread(conversation: Conversation, actor: Any) -> Conversation:
    """Staff only: flag the conversation unread again from the last customer message."""
    if not roles.is_staff(actor):
        raise PermissionDenied(_("Only staff can mark a conversation unread."))
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        last_customer = (
            Message.objects.filter(conversation=locked, sender_side=Side.USER)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
        if last_customer is None or locked.unread_staff_count:
            _copy_state(locked, conversation)
            return conversation
        # A flag, not a watermark: staff_read_id stays where it is, so the customer's
        # "Read" receipts never turn back into "Delivered". mark_read recounts from it.
        Conversation.objects.filter(pk=locked.pk).update(unread_staff_count=1)
        locked.refresh_from_db()
        _audit(actor, AuditEntry.Action.MARK_UNREAD, locked)
        _publish_unread(locked)
    _copy_state(locked, conversation)
    return conversation


def mark_delivered(conversation: Conversation, recipient: Any, up_to_id: int) -> Conversation:
    """The recipient's client has these messages: move its side's delivered watermark."""
    side = side_of(recipient, conversation)
    prefix = "user" if side == Side.USER else "staff"
    field = f"{prefix}_delivered_id"
    with transaction.atomic():
        target = max(0, min(int(up_to_id), _newest_id(conversation)))
        moved = Conversation.objects.filter(pk=conversation.pk, **{f"{field}__lt": target}).update(
            **{field: target}
        )
        conversation.refresh_from_db()
        if moved:
            events.publish(
                [events.conversation_group(conversation.pk)],
                events.MESSAGE_DELIVERED,
                {"conversation_id": conversation.pk, "side": side.value, "up_to_id": target},
            )
    return conversation


def assign(conversation: Conversation, actor: Any, assignee: Any | None) -> Conversation:
    """Assign to a staff member (``None`` unassigns). Only staff may assign."""
    if not roles.is_staff(actor):
        raise PermissionDenied(_("Only staff can assign conversations."))
    if assignee is not None and not roles.is_staff(assignee):
        raise ValidationError({"assignee": [_("Conversations can only be assigned to staff.")]})
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        previous = locked.assigned_to_id
        new = assignee.pk if assignee is not None else None
        if previous == new:
            _copy_state(locked, conversation)
            return conversation
        locked.assigned_to = assignee
        locked.save(update_fields=["assigned_to", "updated_at"])
        action = AuditEntry.Action.ASSIGN if assignee is not None else AuditEntry.Action.UNASSIGN
        _audit(actor, action, locked, previous=previous, assignee=new)
        if assignee is not None and assignee.pk != actor.pk:
            _notify(locked, assignee.pk, Notification.Type.ASSIGNMENT, by=actor.pk)
        _publish_conversation(locked, "assigned", previous_assignee=previous)
        _send_on_commit(
            signals.conversation_assigned,
            Conversation,
            conversation=locked,
            actor=actor,
            assignee=assignee,
        )
    _copy_state(locked, conversation)
    return conversation


def _set_status(conversation: Conversation, actor: Any, status: str) -> Conversation:
    if not roles.is_staff(actor):
        raise PermissionDenied(_("Only staff can close or reopen conversations."))
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if locked.status == status:
            _copy_state(locked, conversation)
            return conversation
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
        closing = status == Conversation.Status.CLOSED
        _audit(actor, AuditEntry.Action.CLOSE if closing else AuditEntry.Action.REOPEN, locked)
        if closing and locked.customer_id != actor.pk:
            _notify(locked, locked.customer_id, Notification.Type.CONVERSATION_CLOSED, by=actor.pk)
        _publish_conversation(locked, "closed" if closing else "reopened")
        signal = signals.conversation_closed if closing else signals.conversation_reopened
        _send_on_commit(signal, Conversation, conversation=locked, actor=actor)
    _copy_state(locked, conversation)
    return conversation


def close(conversation: Conversation, actor: Any) -> Conversation:
    return _set_status(conversation, actor, Conversation.Status.CLOSED)


def reopen(conversation: Conversation, actor: Any) -> Conversation:
    return _set_status(conversation, actor, Conversation.Status.OPEN)


def staff_users() -> Any:
    """Active users the staff predicate accepts (for assignment choices)."""
    User = get_user_model()
    # Narrow in SQL only by the fields this user model really has; the predicate decides.
    fields = {field.name for field in User._meta.get_fields()}
    candidates = names.active_users().order_by(User.USERNAME_FIELD)
    if roles.uses_default_predicates() and {"is_staff", "is_superuser"} <= fields:
        candidates = candidates.filter(Q(is_staff=True) | Q(is_superuser=True))
    return [user for user in candidates if roles.is_staff(user)]


def staff_user_ids(excluding: Any = None) -> list[Any]:
    """The ids of ``staff_users()``, leaving out ``excluding`` (user ids: a queryset or a
    list). With the default predicates and a user model that has ``is_staff`` and
    ``is_superuser`` fields the predicates are exact in SQL: one query of ids, no user
    instances (every customer message of an unassigned conversation asks this)."""
    User = get_user_model()
    fields = {field.name for field in User._meta.get_fields()}
    if roles.uses_default_predicates() and {"is_staff", "is_superuser"} <= fields:
        candidates = names.active_users().filter(Q(is_staff=True) | Q(is_superuser=True))
        if excluding is not None:
            candidates = candidates.exclude(pk__in=excluding)
        return list(candidates.order_by().values_list("pk", flat=True))
    left_out = set(excluding) if excluding is not None else set()
    return [user.pk for user in staff_users() if user.pk not in left_out]
