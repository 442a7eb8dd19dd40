"""The send path's statements with SQL compiled once (statements.py, #14): what they store
and read is what the ORM stores and reads, on SQLite and on PostgreSQL (the suite runs
this module on both); they take the ORM's path where they cannot be sure of that."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_support_chat import services, statements
from django_support_chat.models import AuditEntry, Conversation, Message, Notification

from .factories import ConversationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    statements.clear()
    yield
    statements.clear()


def row(obj) -> dict:
    """Every column of ``obj`` as the ORM reads it back, without the primary key."""
    fresh = type(obj)._base_manager.get(pk=obj.pk)
    return {
        f.attname: getattr(fresh, f.attname)
        for f in type(obj)._meta.concrete_fields
        if not f.primary_key
    }


def compiled(kind: str, *rest) -> object:
    return statements._compiled.get(("default", connection.vendor, kind, *rest), "missing")


def test_an_insert_stores_what_create_stores():
    alice = UserFactory()
    conversation = ConversationFactory(customer=alice)
    now = timezone.now()
    fields = {
        "conversation": conversation,
        "sender": alice,
        "sender_side": "user",
        "text": "Grüße <b>",
        "html": "<p>Grüße &lt;b&gt;</p>",
        "created_at": now,
        "seq": 1,
    }
    mine = Message(client_id=uuid.uuid4(), **fields)
    with CaptureQueriesContext(connection) as queries:
        statements.insert(mine)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    assert compiled("insert", Message) is not None  # the compiled path, not save()
    assert mine.pk is not None and not mine._state.adding and mine._state.db == "default"
    theirs = Message.objects.create(client_id=uuid.uuid4(), **{**fields, "seq": 2})
    expected = row(theirs) | {"client_id": mine.client_id, "seq": 1}
    assert row(mine) == expected
    assert row(mine)["created_at"] == now  # an aware datetime, as written

    # JSON columns (an audit entry's details, a notification's payload) the same way.
    staff = UserFactory(staff=True)
    details = {"message_id": mine.pk, "note": "ünïcode", "list": [1, None, True]}
    entry = AuditEntry(actor=staff, action="reply", conversation=conversation, details=details)
    statements.insert(entry)
    assert compiled("insert", AuditEntry) is not None  # JSON bound as the ORM binds it
    assert row(entry)["details"] == details
    note = Notification(user_id=alice.pk, type="message_received", payload=details)
    statements.insert(note)
    assert compiled("insert", Notification) is not None
    assert row(note)["payload"] == details
    assert row(note)["read_at"] is None


def test_the_second_insert_reuses_the_sql_and_a_duplicate_raises_integrity_error():
    alice = UserFactory()
    conversation = ConversationFactory(customer=alice)
    client_id = uuid.uuid4()

    def message(seq: int) -> Message:
        return Message(
            conversation=conversation,
            sender=alice,
            sender_side="user",
            text="hi",
            html="<p>hi</p>",
            client_id=client_id,
            created_at=timezone.now(),
            seq=seq,
        )

    statements.insert(message(1))
    first = compiled("insert", Message)
    with pytest.raises(Exception) as caught, transaction.atomic():
        statements.insert(message(2))  # the same client_id: the unique constraint
    assert type(caught.value).__name__ == "IntegrityError"
    assert compiled("insert", Message) is first
    assert Message.objects.filter(client_id=client_id).count() == 1


def test_a_post_save_receiver_is_still_called():
    """A host listening to post_save on Message keeps getting it: with a receiver the
    INSERT goes through save()."""
    seen = []

    def receiver(sender, instance, created, **kwargs):
        seen.append((instance.text, created))

    post_save.connect(receiver, sender=Message)
    try:
        alice = UserFactory()
        conversation = ConversationFactory(customer=alice)
        services.send_message(
            conversation=conversation, sender=alice, text="hello", client_id=str(uuid.uuid4())
        )
    finally:
        post_save.disconnect(receiver, sender=Message)
    assert seen == [("hello", True)]


def test_get_reads_what_the_orm_reads():
    alice = UserFactory()
    staff = UserFactory(staff=True)
    conversation = ConversationFactory(customer=alice, assigned_to=staff)
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message_at=timezone.now() - dt.timedelta(days=2), unread_staff_count=3
    )
    with transaction.atomic():
        mine = statements.get(Conversation.objects.select_for_update(), conversation.pk, "t")
        theirs = Conversation.objects.select_for_update().get(pk=conversation.pk)
    assert compiled("get", Conversation, "t") is not None
    for field in Conversation._meta.concrete_fields:
        value = getattr(mine, field.attname)
        assert value == getattr(theirs, field.attname), field.attname
        assert type(value) is type(getattr(theirs, field.attname)), field.attname
    assert mine._state.db == "default" and not mine._state.adding
    assert mine.customer == alice  # relations load as usual

    with pytest.raises(Conversation.DoesNotExist), transaction.atomic():
        statements.get(Conversation.objects.select_for_update(), conversation.pk + 1000, "t")


def test_get_with_the_customer_joined_loads_both_in_one_statement():
    """The staff side's row lock: the conversation and its customer (the notification's
    event names them), one statement, no query when the customer is read."""
    alice = UserFactory(last_name="Archer")
    conversation = ConversationFactory(customer=alice)
    theirs = services._lock_with_customer(Conversation.objects.all()).get(pk=conversation.pk)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        mine = statements.get(
            services._lock_with_customer(Conversation.objects.all()), conversation.pk, "t+c"
        )
        customer = mine.customer
    assert compiled("get", Conversation, "t+c") is not None
    assert len(queries.captured_queries) <= 3  # SAVEPOINT/BEGIN, the SELECT, RELEASE
    assert sum("SELECT" in q["sql"] for q in queries.captured_queries) == 1
    for field in Conversation._meta.concrete_fields:
        assert getattr(mine, field.attname) == getattr(theirs, field.attname), field.attname
    for field in type(alice)._meta.concrete_fields:
        value = getattr(customer, field.attname)
        assert value == getattr(theirs.customer, field.attname), field.attname
        assert type(value) is type(getattr(theirs.customer, field.attname)), field.attname
    assert customer.last_name == "Archer" and customer._state.db == "default"


def test_update_writes_what_the_orm_writes():
    alice = UserFactory()
    conversation = ConversationFactory(customer=alice)
    message = services.send_message(
        conversation=conversation, sender=alice, text="hi", client_id=str(uuid.uuid4())
    )[0]
    when = timezone.now() + dt.timedelta(minutes=5)
    changes = {
        "last_message": message,  # an instance for a foreign key, as the send gives
        "unread_staff_count": 7,
        "status": Conversation.Status.CLOSED,
        "updated_at": when,
    }
    assert statements.update(Conversation, conversation.pk, changes) == 1
    assert compiled("update", Conversation, tuple(changes)) is not None
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.last_message_id, stored.unread_staff_count) == (message.pk, 7)
    assert (stored.status, stored.updated_at) == (Conversation.Status.CLOSED, when)
    assert statements.update(Conversation, conversation.pk + 1000, changes) == 0

    # An expression is the ORM's: it still works, and nothing is compiled for it.
    assert (
        statements.update(
            Conversation, conversation.pk, {"unread_staff_count": F("unread_staff_count") + 1}
        )
        == 1
    )
    assert Conversation.objects.get(pk=conversation.pk).unread_staff_count == 8


def test_another_database_takes_the_orm_path(monkeypatch):
    monkeypatch.setattr(statements, "VENDORS", frozenset({"oracle"}))
    alice = UserFactory()
    conversation = ConversationFactory(customer=alice)
    message, created = services.send_message(
        conversation=conversation, sender=alice, text="hi", client_id=str(uuid.uuid4())
    )
    assert created and Message.objects.get(pk=message.pk).text == "hi"
    assert compiled("insert", Message) is None
    assert compiled("update", Conversation, ()) == "missing"
    assert any(v is None for k, v in statements._compiled.items() if k[2] == "update")
    assert compiled("get", Conversation, "lock") is None


def test_the_statements_of_a_send_share_one_cursor_and_execute_wrappers_see_them():
    """Outside a debug cursor, a thread's statements run on one kept cursor; whatever a
    site wraps around execution (``connection.execute_wrapper``) still sees each one."""
    alice = UserFactory()
    staff = UserFactory(is_staff=True)
    conversation = ConversationFactory(customer=alice)
    seen: list[tuple[str, object]] = []

    def spy(execute, sql, params, many, context):
        seen.append((sql.split()[0], context["cursor"]))  # kept alive: ids stay distinct
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        services.send_message(conversation, alice, "first", uuid.uuid4())
        services.send_message(conversation, staff, "a reply", uuid.uuid4())
    kinds = [kind for kind, _ in seen]
    # the customer's lock, message, UPDATE; the staff reply's lock, message, UPDATE,
    # audit entry and notification (and whatever the ORM asks meanwhile)
    assert kinds.count("INSERT") == 4 and kinds.count("UPDATE") == 2, kinds
    mine = {id(cursor) for kind, cursor in seen if kind in ("INSERT", "UPDATE")}
    assert len(mine) == 1  # one cursor for all of them
    assert Message.objects.filter(conversation=conversation).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_send_after_the_connection_closed_takes_a_new_cursor():
    alice = UserFactory()
    conversation = ConversationFactory(customer=alice)
    services.send_message(conversation, alice, "before", uuid.uuid4())
    connection.close()  # as at the end of a request, or a database restart
    message, created = services.send_message(conversation, alice, "after", uuid.uuid4())
    assert created and Message.objects.get(pk=message.pk).text == "after"
    assert statements._kept.cursors["default"][0] is connection.connection
