"""The service layer: the only writers of chat state."""

from __future__ import annotations

import logging
import uuid
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_support_chat import events, services
from django_support_chat.exceptions import ConversationClosed, PermissionDenied, ValidationError
from django_support_chat.models import AuditEntry, Conversation, Message, Notification, Side

from .factories import ConversationFactory, UserFactory, send

pytestmark = pytest.mark.django_db


def fresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def unread_after_watermark(conversation: Conversation, side: Side) -> int:
    """What the counter of ``side`` must say: the other side's messages after its read mark."""
    read_id = conversation.user_read_id if side == Side.USER else conversation.staff_read_id
    return Message.objects.filter(
        conversation=conversation, sender_side=side.other, id__gt=read_id
    ).count()


def assert_counters_match_watermarks(conversation: Conversation) -> None:
    conversation = fresh(conversation)
    assert conversation.unread_user_count == unread_after_watermark(conversation, Side.USER)
    assert conversation.unread_staff_count == unread_after_watermark(conversation, Side.STAFF)


class TestStartConversation:
    def test_creates_once(self, customer):
        first, created = services.get_or_start_conversation(customer)
        assert created
        again, created_again = services.get_or_start_conversation(customer)
        assert not created_again
        assert again == first
        assert Conversation.objects.filter(customer=customer).count() == 1

    @pytest.mark.django_db(transaction=True)
    def test_concurrent_first_calls_start_one(self, customer):
        """On any database (SQLite: serialised writes, IMMEDIATE transactions); the
        PostgreSQL row-lock version is in test_concurrency.py."""
        import threading
        import time

        from .test_concurrency import run_concurrently

        results, lock, lookup = [], threading.Lock(), services._latest_conversation

        def slow_lookup(user):
            found = lookup(user)
            time.sleep(0.05)  # every call looks before any of them creates
            return found

        def first_call():
            conversation, created = services.get_or_start_conversation(customer)
            with lock:
                results.append((conversation.pk, created))

        with mock.patch.object(services, "_latest_conversation", slow_lookup):
            run_concurrently([first_call] * 4)
        [conversation] = Conversation.objects.filter(customer=customer)
        assert {pk for pk, _created in results} == {conversation.pk}
        assert [created for _pk, created in results].count(True) == 1

    def test_returns_latest(self, customer):
        old = ConversationFactory(customer=customer)
        new = ConversationFactory(customer=customer)
        send(old, customer)  # old now has the latest activity
        assert services.get_or_start_conversation(customer) == (old, False)
        send(new, customer)
        assert services.get_or_start_conversation(customer) == (new, False)


class TestSendMessage:
    def test_customer_message_counts_for_staff(self, conversation, customer):
        message, created = services.send_message(conversation, customer, "  hi  ", uuid.uuid4())
        assert created
        assert message.text == "hi"
        assert message.sender == customer
        assert message.sender_side == Side.USER
        conversation.refresh_from_db()
        assert conversation.unread_staff_count == 1
        assert conversation.unread_user_count == 0
        # The sender's own watermarks move to its message.
        assert conversation.user_read_id == message.pk
        assert conversation.user_delivered_id == message.pk
        assert conversation.staff_read_id == conversation.staff_delivered_id == 0
        assert conversation.last_message == message
        assert conversation.last_message_at == message.created_at

    def test_staff_message_counts_for_customer(self, conversation, customer, staff):
        send(conversation, customer)
        reply = send(conversation, staff, "hello, how can I help?")
        assert reply.sender_side == Side.STAFF
        conversation.refresh_from_db()
        assert conversation.unread_user_count == 1
        assert conversation.staff_read_id == conversation.staff_delivered_id == reply.pk
        assert conversation.last_message == reply

    def test_counters_accumulate(self, conversation, customer):
        for n in range(3):
            send(conversation, customer, f"message {n}")
        assert fresh(conversation).unread_staff_count == 3

    def test_replying_reads_what_came_before(self, conversation, customer, staff):
        """The sender's read watermark moves to its own message, so its unread counter
        must agree: a staff reply leaves the staff side with nothing unread."""
        send(conversation, customer, "one")
        send(conversation, customer, "two")
        send(conversation, staff, "answer")
        conversation = fresh(conversation)
        assert conversation.unread_staff_count == 0
        assert conversation.unread_user_count == 1
        assert_counters_match_watermarks(conversation)

    def test_callers_instance_refreshed(self, conversation, customer):
        message = send(conversation, customer)
        assert conversation.unread_staff_count == 1
        assert conversation.last_message_id == message.pk

    def test_ids_increase(self, conversation, customer, staff):
        ids = [send(conversation, user).pk for user in (customer, staff, customer, staff)]
        assert ids == sorted(ids)
        assert len(set(ids)) == 4

    def test_resend_same_client_id_is_idempotent(self, conversation, customer):
        client_id = uuid.uuid4()
        first, created = services.send_message(conversation, customer, "hi", client_id)
        again, created_again = services.send_message(conversation, customer, "hi", str(client_id))
        assert created and not created_again
        assert again.pk == first.pk
        assert Message.objects.filter(conversation=conversation).count() == 1
        assert fresh(conversation).unread_staff_count == 1  # counted once

    def test_resend_returns_stored_text_not_new_text(self, conversation, customer):
        client_id = uuid.uuid4()
        first = send(conversation, customer, "original", client_id)
        again, created = services.send_message(conversation, customer, "changed", client_id)
        assert not created
        assert again.pk == first.pk
        assert again.text == "original"

    def test_resend_refreshes_the_callers_conversation(self, conversation, customer, staff):
        """A retry's reply shows the message's current status, not the caller's stale copy."""
        client_id = uuid.uuid4()
        first = send(conversation, customer, "hi", client_id)
        stale = Conversation.objects.get(pk=conversation.pk)
        services.mark_read(conversation, staff)
        again, created = services.send_message(stale, customer, "hi", client_id)
        assert not created and again.pk == first.pk
        assert stale.staff_read_id == first.pk
        assert again.status_for_recipient(stale) == "read"

    def test_client_id_scoped_per_sender(self, conversation, customer, staff):
        client_id = uuid.uuid4()
        a = send(conversation, customer, "a", client_id)
        b = send(conversation, staff, "b", client_id)
        assert a.pk != b.pk

    def test_customer_message_reopens_closed_conversation(self, conversation, customer, staff):
        services.close(conversation, staff)
        send(conversation, customer, "I still need help")
        assert fresh(conversation).status == Conversation.Status.OPEN

    def test_staff_reply_to_closed_conversation_refused(self, conversation, customer, staff):
        send(conversation, customer)
        services.close(conversation, staff)
        before = fresh(conversation)
        with pytest.raises(ConversationClosed):
            send(conversation, staff, "too late")
        after = fresh(conversation)
        assert Message.objects.filter(conversation=conversation).count() == 1
        assert after.status == Conversation.Status.CLOSED
        assert after.unread_user_count == before.unread_user_count == 0
        assert not AuditEntry.objects.filter(action=AuditEntry.Action.REPLY).exists()

    def test_resends_after_closing_return_the_stored_message(
        self, conversation, customer, staff, django_capture_on_commit_callbacks
    ):
        """A retry whose first attempt was stored before the conversation was closed: the
        stored message, not "closed" for staff; no reopening, no event for the customer."""
        reply_id, question_id = uuid.uuid4(), uuid.uuid4()
        question = send(conversation, customer, "question", question_id)
        reply = send(conversation, staff, "answer", reply_id)
        services.close(conversation, staff)
        before = fresh(conversation)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            again, created = services.send_message(conversation, staff, "answer", reply_id)
            assert (again.pk, created) == (reply.pk, False)
            again, created = services.send_message(conversation, customer, "q", question_id)
            assert (again.pk, created) == (question.pk, False)
        assert callbacks == []  # nothing published, no signal
        after = fresh(conversation)
        assert after.status == Conversation.Status.CLOSED
        assert (after.last_seq, after.unread_user_count) == (
            before.last_seq,
            before.unread_user_count,
        )
        assert conversation.status == Conversation.Status.CLOSED  # the caller's copy too
        assert Message.objects.filter(conversation=conversation).count() == 2
        assert AuditEntry.objects.filter(action=AuditEntry.Action.REPLY).count() == 1

    def test_staff_reply_audited_and_notifies_customer(self, conversation, customer, staff):
        send(conversation, customer)
        reply = send(conversation, staff, "answer")
        entry = AuditEntry.objects.get(action=AuditEntry.Action.REPLY)
        assert entry.actor == staff
        assert entry.conversation == conversation
        assert entry.details == {"message_id": reply.pk}
        notification = Notification.objects.get(user=customer)
        assert notification.type == Notification.Type.MESSAGE_RECEIVED
        assert notification.payload == {"conversation_id": conversation.pk, "message_id": reply.pk}

    def test_customer_message_notifies_assignee_only(self, conversation, customer, staff):
        send(conversation, customer, "before assignment")
        assert not Notification.objects.exists()
        services.assign(conversation, staff, staff)
        message = send(conversation, customer, "after assignment")
        notification = Notification.objects.get(user=staff)
        assert notification.payload["message_id"] == message.pk
        assert not AuditEntry.objects.filter(action=AuditEntry.Action.REPLY).exists()

    @pytest.mark.parametrize(
        "text", ["", "   ", "a" * 5001, "bad\x00", "lone \ud800", None, 5, ["x"]]
    )
    def test_invalid_text_stores_nothing(self, conversation, customer, text):
        with pytest.raises(ValidationError) as excinfo:
            services.send_message(conversation, customer, text, uuid.uuid4())
        assert "text" in excinfo.value.message_dict
        assert not Message.objects.exists()
        assert fresh(conversation).unread_staff_count == 0

    @pytest.mark.parametrize("client_id", [None, "", "not-a-uuid", 123])
    def test_invalid_client_id_stores_nothing(self, conversation, customer, client_id):
        with pytest.raises(ValidationError) as excinfo:
            services.send_message(conversation, customer, "hi", client_id)
        assert "client_id" in excinfo.value.message_dict
        assert not Message.objects.exists()

    def test_outsider_cannot_send(self, conversation, other_customer):
        with pytest.raises(PermissionDenied):
            send(conversation, other_customer)
        assert not Message.objects.exists()


class TestMarkRead:
    def test_customer_read_resets_own_counter_only(self, conversation, customer, staff):
        send(conversation, customer, "question")
        reply1 = send(conversation, staff, "a1")
        reply2 = send(conversation, staff, "a2")
        assert fresh(conversation).unread_user_count == 2
        services.mark_read(conversation, customer)
        conversation = fresh(conversation)
        assert conversation.unread_user_count == 0
        assert conversation.user_read_id == reply2.pk
        assert conversation.user_delivered_id == reply2.pk
        assert conversation.staff_read_id == reply2.pk  # untouched (staff's own last send)
        assert reply1.status_for_recipient(conversation) == Message.Status.READ

    def test_staff_read_resets_staff_counter(self, conversation, customer, staff):
        send(conversation, customer, "one")
        last = send(conversation, customer, "two")
        services.mark_read(conversation, staff)
        conversation = fresh(conversation)
        assert conversation.unread_staff_count == 0
        assert conversation.staff_read_id == last.pk
        assert conversation.unread_user_count == 0
        entry = AuditEntry.objects.get(action=AuditEntry.Action.MARK_READ)
        assert entry.actor == staff

    def test_partial_read_leaves_remaining(self, conversation, customer, staff):
        messages = [send(conversation, customer, f"m{n}") for n in range(5)]
        services.mark_read(conversation, staff, up_to_id=messages[1].pk)
        conversation = fresh(conversation)
        assert conversation.staff_read_id == messages[1].pk
        assert conversation.unread_staff_count == 3
        assert_counters_match_watermarks(conversation)

    def test_never_moves_backwards(self, conversation, customer, staff):
        messages = [send(conversation, customer, f"m{n}") for n in range(4)]
        services.mark_read(conversation, staff, up_to_id=messages[2].pk)
        services.mark_read(conversation, staff, up_to_id=messages[0].pk)
        conversation = fresh(conversation)
        assert conversation.staff_read_id == messages[2].pk
        assert conversation.unread_staff_count == 1

    def test_up_to_beyond_newest_is_clamped(self, conversation, customer, staff):
        last = send(conversation, customer)
        services.mark_read(conversation, staff, up_to_id=last.pk + 1000)
        assert fresh(conversation).staff_read_id == last.pk

    def test_nothing_to_read_is_a_no_op(self, conversation, customer, staff):
        services.mark_read(conversation, staff)
        conversation = fresh(conversation)
        assert conversation.staff_read_id == 0
        assert not AuditEntry.objects.exists()

    def test_updates_callers_instance(self, conversation, customer, staff):
        send(conversation, customer)
        services.mark_read(conversation, staff)
        assert conversation.unread_staff_count == 0

    def test_outsider_refused(self, conversation, customer, other_customer):
        send(conversation, customer)
        with pytest.raises(PermissionDenied):
            services.mark_read(conversation, other_customer)
        assert fresh(conversation).unread_staff_count == 1


class TestMarkDelivered:
    def test_moves_delivered_only(self, conversation, customer, staff):
        first = send(conversation, customer, "one")
        send(conversation, customer, "two")
        services.mark_delivered(conversation, staff, first.pk)
        conversation = fresh(conversation)
        assert conversation.staff_delivered_id == first.pk
        assert conversation.staff_read_id == 0
        assert conversation.unread_staff_count == 2
        assert first.status_for_recipient(conversation) == Message.Status.DELIVERED

    def test_never_backwards_and_clamped(self, conversation, customer, staff):
        first = send(conversation, customer, "one")
        second = send(conversation, customer, "two")
        services.mark_delivered(conversation, staff, second.pk + 50)
        assert fresh(conversation).staff_delivered_id == second.pk
        services.mark_delivered(conversation, staff, first.pk)
        assert fresh(conversation).staff_delivered_id == second.pk

    def test_outsider_refused(self, conversation, customer, other_customer):
        message = send(conversation, customer)
        with pytest.raises(PermissionDenied):
            services.mark_delivered(conversation, other_customer, message.pk)


class TestMarkUnread:
    def test_flags_unread_without_moving_the_watermark(self, conversation, customer, staff):
        send(conversation, customer, "one")
        last = send(conversation, customer, "two")
        services.mark_read(conversation, staff)
        services.mark_unread(conversation, staff)
        conversation = fresh(conversation)
        assert conversation.unread_staff_count == 1  # the flag
        assert conversation.staff_read_id == last.pk  # never moves back
        assert conversation.staff_delivered_id == last.pk
        assert AuditEntry.objects.filter(action=AuditEntry.Action.MARK_UNREAD, actor=staff).exists()

    def test_customer_receipt_stays_read(self, conversation, customer, staff):
        message = send(conversation, customer, "did you read this?")
        services.mark_read(conversation, staff)
        assert message.status_for_recipient(fresh(conversation)) == "read"
        services.mark_unread(conversation, staff)
        assert message.status_for_recipient(fresh(conversation)) == "read"

    def test_mark_read_clears_the_flag(self, conversation, customer, staff):
        last = send(conversation, customer)
        services.mark_read(conversation, staff)
        services.mark_unread(conversation, staff)
        services.mark_read(conversation, staff)
        conversation = fresh(conversation)
        assert conversation.unread_staff_count == 0
        assert conversation.staff_read_id == last.pk
        assert_counters_match_watermarks(conversation)

    def test_new_customer_message_after_the_flag_counts_one(self, conversation, customer, staff):
        send(conversation, customer)
        services.mark_read(conversation, staff)
        services.mark_unread(conversation, staff)
        send(conversation, customer)
        conversation = fresh(conversation)
        assert conversation.unread_staff_count == 1
        assert_counters_match_watermarks(conversation)
        send(conversation, customer)
        assert fresh(conversation).unread_staff_count == 2

    def test_no_op_without_customer_messages_or_when_already_unread(
        self, conversation, customer, staff
    ):
        services.mark_unread(conversation, staff)
        assert fresh(conversation).unread_staff_count == 0
        send(conversation, customer)
        send(conversation, customer)
        services.mark_unread(conversation, staff)
        assert fresh(conversation).unread_staff_count == 2
        assert not AuditEntry.objects.filter(action=AuditEntry.Action.MARK_UNREAD).exists()

    def test_customer_refused(self, conversation, customer):
        send(conversation, customer)
        with pytest.raises(PermissionDenied):
            services.mark_unread(conversation, customer)


class TestAssign:
    def test_assign_and_unassign(self, conversation, staff, admin):
        services.assign(conversation, admin, staff)
        assert fresh(conversation).assigned_to == staff
        assert conversation.assigned_to_id == staff.pk
        services.assign(conversation, admin, None)
        assert fresh(conversation).assigned_to is None
        entries = list(AuditEntry.objects.order_by("id").values_list("action", "actor", "details"))
        assert entries == [
            (AuditEntry.Action.ASSIGN, admin.pk, {"previous": None, "assignee": staff.pk}),
            (AuditEntry.Action.UNASSIGN, admin.pk, {"previous": staff.pk, "assignee": None}),
        ]

    def test_assignee_notified_unless_self_assigned(self, conversation, staff, admin):
        services.assign(conversation, staff, staff)
        assert not Notification.objects.exists()
        services.assign(conversation, staff, admin)
        notification = Notification.objects.get(user=admin)
        assert notification.type == Notification.Type.ASSIGNMENT
        assert notification.payload == {"conversation_id": conversation.pk, "by": staff.pk}

    def test_same_assignee_is_a_no_op(self, conversation, staff):
        services.assign(conversation, staff, staff)
        services.assign(conversation, staff, staff)
        assert AuditEntry.objects.count() == 1

    def test_non_staff_assignee_rejected(self, conversation, staff, other_customer):
        with pytest.raises(ValidationError) as excinfo:
            services.assign(conversation, staff, other_customer)
        assert "assignee" in excinfo.value.message_dict
        assert fresh(conversation).assigned_to is None
        assert not AuditEntry.objects.exists()

    def test_inactive_staff_assignee_rejected(self, conversation, staff):
        gone = UserFactory(staff=True, is_active=False)
        with pytest.raises(ValidationError):
            services.assign(conversation, staff, gone)

    def test_customer_actor_refused(self, conversation, customer, staff):
        with pytest.raises(PermissionDenied):
            services.assign(conversation, customer, staff)
        assert fresh(conversation).assigned_to is None
        assert not AuditEntry.objects.exists()


class TestCloseReopen:
    def test_close_and_reopen_audited(self, conversation, staff):
        services.close(conversation, staff)
        assert fresh(conversation).status == Conversation.Status.CLOSED
        assert conversation.status == Conversation.Status.CLOSED
        services.reopen(conversation, staff)
        assert fresh(conversation).status == Conversation.Status.OPEN
        actions = list(AuditEntry.objects.order_by("id").values_list("action", "actor"))
        assert actions == [
            (AuditEntry.Action.CLOSE, staff.pk),
            (AuditEntry.Action.REOPEN, staff.pk),
        ]

    def test_unchanged_status_is_a_no_op(
        self, conversation, staff, channel_layer, django_capture_on_commit_callbacks
    ):
        channel = channel_layer.subscribe(events.STAFF_GROUP)
        with django_capture_on_commit_callbacks(execute=True):
            services.reopen(conversation, staff)  # already open
            services.close(conversation, staff)
            services.close(conversation, staff)  # already closed
        assert list(AuditEntry.objects.values_list("action", flat=True)) == [
            AuditEntry.Action.CLOSE
        ]
        assert [event["data"]["change"] for event in channel_layer.drain(channel)] == ["closed"]

    def test_customer_refused(self, conversation, customer):
        with pytest.raises(PermissionDenied):
            services.close(conversation, customer)
        with pytest.raises(PermissionDenied):
            services.reopen(conversation, customer)
        assert fresh(conversation).status == Conversation.Status.OPEN
        assert not AuditEntry.objects.exists()


class TestNotifications:
    def unread(self, user):
        return sorted(
            Notification.objects.filter(user=user, read_at__isnull=True).values_list(
                "type", "payload__conversation_id"
            )
        )

    def test_close_notifies_the_customer_once(self, conversation, customer, staff):
        services.close(conversation, staff)
        services.close(conversation, staff)  # already closed: nothing new
        notification = Notification.objects.get()
        assert notification.user == customer
        assert notification.type == Notification.Type.CONVERSATION_CLOSED
        assert notification.payload == {"conversation_id": conversation.pk, "by": staff.pk}
        assert notification.read_at is None
        services.reopen(conversation, staff)
        assert Notification.objects.count() == 1  # reopening notifies nobody

    def test_staff_closing_their_own_conversation_notifies_nobody(self, staff):
        own = ConversationFactory(customer=staff)
        services.close(own, staff)
        assert not Notification.objects.exists()

    def test_customer_reading_marks_only_that_conversations_notifications(
        self, conversation, customer, staff
    ):
        other = ConversationFactory(customer=customer)
        send(conversation, staff, "reply here")
        send(other, staff, "reply there")
        services.close(conversation, staff)
        services.mark_read(conversation, customer)
        assert self.unread(customer) == [(Notification.Type.MESSAGE_RECEIVED, other.pk)]
        read = Notification.objects.filter(user=customer, payload__conversation_id=conversation.pk)
        assert read.count() == 2
        assert all(n.read_at is not None for n in read)

    def test_staff_reading_marks_their_own_only(self, conversation, customer, staff, admin):
        services.assign(conversation, admin, staff)
        send(conversation, customer, "hello")  # notifies the assignee
        send(conversation, staff, "answer")  # notifies the customer
        services.mark_read(conversation, admin)  # another staff member reads
        assert len(self.unread(staff)) == 2
        services.mark_read(conversation, staff)
        assert self.unread(staff) == []
        assert self.unread(customer) == [(Notification.Type.MESSAGE_RECEIVED, conversation.pk)]

    def test_reading_with_nothing_unread_still_reads_the_assignment(
        self, conversation, staff, admin
    ):
        services.assign(conversation, admin, staff)
        assert fresh(conversation).unread_staff_count == 0
        services.mark_read(conversation, staff)
        assert self.unread(staff) == []

    def test_reading_up_to_a_message_leaves_later_ones_unread(self, conversation, customer, staff):
        """A read with an older ``up_to_id`` (a client that had not seen the newest reply
        yet) leaves that reply's notification unread: its email still goes out."""
        first = send(conversation, staff, "first reply")
        later = send(conversation, staff, "a reply the customer has not seen")
        services.close(conversation, staff)
        services.mark_read(conversation, customer, up_to_id=first.pk)
        unread = Notification.objects.filter(user=customer, read_at__isnull=True)
        assert [n.payload["message_id"] for n in unread] == [later.pk]
        services.mark_read(conversation, customer)
        assert self.unread(customer) == []

    def test_read_at_is_kept_on_a_second_read(self, conversation, customer, staff):
        send(conversation, staff, "reply")
        services.mark_read(conversation, customer)
        first = Notification.objects.get().read_at
        services.mark_read(conversation, customer)
        assert Notification.objects.get().read_at == first

    def test_mark_notifications_read_by_id_or_all(
        self, conversation, customer, other_customer, staff
    ):
        other = ConversationFactory(customer=other_customer)
        send(conversation, staff, "one")
        send(conversation, staff, "two")
        send(other, staff, "theirs")
        mine = list(Notification.objects.filter(user=customer).order_by("id"))
        theirs = Notification.objects.get(user=other_customer)
        assert services.mark_notifications_read(customer, [mine[0].pk, theirs.pk]) == 1
        assert services.mark_notifications_read(customer, [mine[0].pk]) == 0  # idempotent
        assert Notification.objects.get(pk=theirs.pk).read_at is None
        assert services.mark_notifications_read(customer) == 1
        assert self.unread(customer) == []
        assert Notification.objects.get(pk=theirs.pk).read_at is None

    def test_sending_writes_one_insert_and_no_other_notification_query(
        self, conversation, customer, staff
    ):
        send(conversation, customer, "warm up")
        with CaptureQueriesContext(connection) as captured:
            send(conversation, staff, "reply")
        touching = [q["sql"] for q in captured if "support_chat_notification" in q["sql"]]
        assert len(touching) == 1 and touching[0].startswith("INSERT"), touching


class TestStaffUsers:
    def test_lists_active_staff_and_admins(self, customer, staff, admin):
        UserFactory(staff=True, is_active=False)
        superuser_only = UserFactory(is_superuser=True, is_staff=False)
        assert set(services.staff_users()) == {staff, admin, superuser_only}


class TestEvents:
    """Events leave only after the transaction commits, and a broadcast failure loses nothing."""

    def test_message_new_published_after_commit(
        self, conversation, customer, channel_layer, django_capture_on_commit_callbacks
    ):
        channel = channel_layer.subscribe(events.conversation_group(conversation.pk))
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            message = send(conversation, customer, "hello")
            assert channel_layer.drain(channel) == []  # nothing before commit
        assert callbacks
        assert channel_layer.drain(channel) == []  # still nothing: not committed yet
        for callback in callbacks:
            callback()
        [new] = [e for e in channel_layer.drain(channel) if e["type"] == events.MESSAGE_NEW]
        assert new["v"] == events.PROTOCOL_VERSION
        assert new["data"]["conversation_id"] == conversation.pk
        assert new["data"]["message"]["id"] == message.pk
        assert new["data"]["message"]["text"] == "hello"
        assert new["data"]["message"]["html"] == "hello"

    def test_staff_lobby_and_customer_badge_are_told(
        self, conversation, customer, staff, channel_layer, django_capture_on_commit_callbacks
    ):
        conversation_channel = channel_layer.subscribe(events.conversation_group(conversation.pk))
        user_channel = channel_layer.subscribe(events.user_group(customer.pk))
        staff_channel = channel_layer.subscribe(events.STAFF_GROUP)

        def counts(event: dict) -> tuple[int, int]:
            return event["data"]["unread_user_count"], event["data"]["unread_staff_count"]

        # The counters ride on message:new, to the lobby and the conversation's sockets
        # (the customer's badge among them): a send publishes no unread:update. The
        # customer's own sockets hear only of the notification a staff reply writes.
        expected = [(customer, (0, 1)), (staff, (1, 0)), (customer, (0, 1))]
        for sender, after in expected:
            with django_capture_on_commit_callbacks(execute=True):
                message = send(conversation, sender)
            for channel in (staff_channel, conversation_channel):
                [new] = channel_layer.drain(channel)
                assert new["type"] == events.MESSAGE_NEW
                assert new["data"]["message"]["id"] == message.pk
                assert counts(new) == after
            told = channel_layer.drain(user_channel)
            if sender == staff:
                assert [e["type"] for e in told] == [events.NOTIFICATION_NEW]
                assert told[0]["data"]["message_id"] == message.pk
            else:
                assert told == []

    def test_nothing_published_when_transaction_rolls_back(
        self, conversation, customer, channel_layer, django_capture_on_commit_callbacks
    ):
        channel = channel_layer.subscribe(events.conversation_group(conversation.pk))

        class Boom(Exception):
            pass

        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(Boom),
            transaction.atomic(),
        ):
            send(conversation, customer)
            raise Boom
        assert callbacks == []
        assert channel_layer.drain(channel) == []
        assert not Message.objects.exists()
        assert fresh(conversation).unread_staff_count == 0

    def test_read_event(
        self, conversation, customer, staff, channel_layer, django_capture_on_commit_callbacks
    ):
        last = send(conversation, customer)
        channel = channel_layer.subscribe(events.conversation_group(conversation.pk))
        with django_capture_on_commit_callbacks(execute=True):
            services.mark_read(conversation, staff)
        [read] = [e for e in channel_layer.drain(channel) if e["type"] == events.MESSAGE_READ]
        assert read["data"] == {
            "conversation_id": conversation.pk,
            "side": "staff",
            "up_to_id": last.pk,
            "reader_id": staff.pk,
        }

    def test_close_event_to_staff(
        self, conversation, staff, channel_layer, django_capture_on_commit_callbacks
    ):
        channel = channel_layer.subscribe(events.STAFF_GROUP)
        with django_capture_on_commit_callbacks(execute=True):
            services.close(conversation, staff)
        [updated] = channel_layer.drain(channel)
        assert updated["type"] == events.CONVERSATION_UPDATED
        assert updated["data"]["change"] == "closed"
        assert updated["data"]["conversation"]["status"] == "closed"

    def test_failing_channel_layer_does_not_lose_the_message(
        self, conversation, customer, channel_layer, django_capture_on_commit_callbacks, caplog
    ):
        failing = mock.AsyncMock(side_effect=ConnectionError("redis is down"))
        with (
            mock.patch.object(channel_layer.layer, "group_send", failing),
            caplog.at_level(logging.ERROR, logger="django_support_chat.events"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            message, created = services.send_message(conversation, customer, "hi", uuid.uuid4())
        assert failing.await_count >= 1  # the broadcast really was attempted
        assert created
        stored = Message.objects.get()
        assert stored.pk == message.pk
        assert stored.text == "hi"
        assert fresh(conversation).unread_staff_count == 1
        assert "Could not publish" in caplog.text


class TestSignals:
    """Public signals leave on commit: never for a change that is rolled back."""

    @pytest.fixture
    def received(self):
        from django_support_chat import signals

        calls: list[tuple[str, dict]] = []
        connected = []
        for name in (
            "message_created",
            "conversation_started",
            "conversation_assigned",
            "conversation_closed",
            "conversation_reopened",
        ):

            def receiver(sender, _name=name, **kwargs):
                calls.append((_name, kwargs))

            getattr(signals, name).connect(receiver, weak=False)
            connected.append((getattr(signals, name), receiver))
        yield calls
        for signal, receiver in connected:
            signal.disconnect(receiver)

    def actions(self, customer, staff):
        """Every signalling action once, in one go; returns the signal names expected."""
        conversation, _ = services.get_or_start_conversation(customer)
        send(conversation, customer)
        services.assign(conversation, staff, staff)
        services.close(conversation, staff)
        services.reopen(conversation, staff)
        return [
            "conversation_started",
            "message_created",
            "conversation_assigned",
            "conversation_closed",
            "conversation_reopened",
        ]

    def test_outer_rollback_sends_nothing(
        self, customer, staff, received, django_capture_on_commit_callbacks
    ):
        class Boom(Exception):
            pass

        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(Boom),
            transaction.atomic(),
        ):
            self.actions(customer, staff)
            assert received == []  # not before the commit either
            raise Boom
        assert received == []
        assert not Conversation.objects.exists()

    def test_outer_commit_sends_each_once(
        self, customer, staff, received, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            expected = self.actions(customer, staff)
            assert received == []
        assert [name for name, _kwargs in received] == expected
        conversation = Conversation.objects.get()
        assert all(kwargs["conversation"] == conversation for _name, kwargs in received)
        assert received[2][1]["assignee"] == staff

    def test_no_signal_for_a_retry_or_a_no_op(
        self, conversation, customer, staff, received, django_capture_on_commit_callbacks
    ):
        client_id = uuid.uuid4()
        with django_capture_on_commit_callbacks(execute=True):
            services.send_message(conversation, customer, "hi", client_id)
        with django_capture_on_commit_callbacks(execute=True):
            services.send_message(conversation, customer, "hi", client_id)
            services.reopen(conversation, staff)  # already open
            services.get_or_start_conversation(customer)  # exists
        assert [name for name, _kwargs in received] == ["message_created"]

    def test_failing_receiver_does_not_stop_the_others(
        self, conversation, staff, received, django_capture_on_commit_callbacks, caplog
    ):
        from django_support_chat import signals

        def broken(sender, **kwargs):
            raise RuntimeError("receiver bug")

        signals.conversation_closed.connect(broken, weak=False)
        try:
            with (
                caplog.at_level(logging.ERROR, logger="django_support_chat.signals"),
                django_capture_on_commit_callbacks(execute=True),
            ):
                services.close(conversation, staff)
        finally:
            signals.conversation_closed.disconnect(broken)
        assert [name for name, _kwargs in received] == ["conversation_closed"]
        assert "receiver bug" in caplog.text
        assert fresh(conversation).status == Conversation.Status.CLOSED
