"""Gap-free delivery: per-conversation sequence numbers (``Message.seq``), catch-up by seq
over the WebSocket (``sync`` with ``after_seq``) and REST (``?after_seq=``), the data
migration that numbers existing messages, and seq under concurrent sends on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from django_support_chat import services
from django_support_chat.models import Conversation, Message

from .conftest import make_user, open_socket


def send(conversation: Conversation, user: Any, text: str = "hi", client_id: Any = None) -> Any:
    return services.send_message(conversation, user, text, client_id or uuid.uuid4())[0]


@pytest.fixture
def pair(db: None) -> dict[str, Any]:
    alice = make_user("alice")
    staff = make_user("sam", is_staff=True)
    return {"alice": alice, "staff": staff, "conv": Conversation.objects.create(customer=alice)}


# -- the sequence ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_seq_counts_1_to_n_per_conversation_both_sides(pair):
    alice, staff, conv = pair["alice"], pair["staff"], pair["conv"]
    other = Conversation.objects.create(customer=make_user("bob"))
    seqs = [send(conv, alice if i % 2 else staff).seq for i in range(6)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert send(other, other.customer).seq == 1  # per conversation
    conv.refresh_from_db()
    assert conv.last_seq == 6
    stored = list(Message.objects.filter(conversation=conv).order_by("id").values_list("seq"))
    assert stored == [(n,) for n in range(1, 7)]


@pytest.mark.django_db
def test_a_resend_keeps_its_seq_and_takes_none(pair):
    alice, conv = pair["alice"], pair["conv"]
    client_id = uuid.uuid4()
    first = send(conv, alice, "once", client_id)
    again, created = services.send_message(conv, alice, "once", client_id)
    assert (created, again.pk, again.seq) == (False, first.pk, 1)
    assert send(conv, alice).seq == 2  # no hole left by the resend
    conv.refresh_from_db()
    assert conv.last_seq == 2


@pytest.mark.django_db
def test_a_refused_send_takes_no_seq(pair):
    staff, conv = pair["staff"], pair["conv"]
    send(conv, staff)
    services.close(conv, staff)
    with pytest.raises(services.ConversationClosed):
        send(conv, staff)
    services.reopen(conv, staff)
    assert send(conv, staff).seq == 2


@pytest.mark.django_db
def test_payloads_carry_seq_and_last_seq(pair):
    from django_support_chat.payloads import conversation_data, message_data

    message = send(pair["conv"], pair["alice"])
    assert message_data(message)["seq"] == 1
    conv = Conversation.objects.get(pk=pair["conv"].pk)
    assert conversation_data(conv)["last_seq"] == 1


@pytest.mark.django_db
def test_message_new_carries_seq(pair, django_capture_on_commit_callbacks):
    from django_support_chat import events

    built: list[dict[str, Any]] = []
    original = events.group_message

    def spy(event: dict[str, Any], origin: str | None = None) -> dict[str, Any]:
        built.append(event)
        return original(event, origin)

    events.group_message = spy  # type: ignore[assignment]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            send(pair["conv"], pair["alice"])
            send(pair["conv"], pair["alice"])
    finally:
        events.group_message = original  # type: ignore[assignment]
    new = [e["data"]["message"]["seq"] for e in built if e["type"] == events.MESSAGE_NEW]
    assert new == [1, 2]


# -- the data migration ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_numbers_existing_messages_in_id_order():
    executor = MigrationExecutor(connection)
    executor.migrate([("support_chat", "0001_initial")])
    old = executor.loader.project_state([("support_chat", "0001_initial")]).apps
    User = old.get_model("auth", "User")
    OldConversation = old.get_model("support_chat", "Conversation")
    OldMessage = old.get_model("support_chat", "Message")
    user = User.objects.create(username="legacy")
    convs = [OldConversation.objects.create(customer=user) for _ in range(3)]
    order = [0, 1, 0, 2, 0, 1]  # interleaved: ids are global, seqs per conversation
    ids = [
        OldMessage.objects.create(
            conversation=convs[i], sender=user, sender_side="user", text="x", client_id=uuid.uuid4()
        ).pk
        for i in order
    ]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    seqs = dict(Message.objects.filter(pk__in=ids).values_list("pk", "seq"))
    assert [seqs[pk] for pk in ids] == [1, 1, 2, 1, 3, 2]
    last = dict(
        Conversation.objects.filter(pk__in=[c.pk for c in convs]).values_list("pk", "last_seq")
    )
    assert [last[c.pk] for c in convs] == [3, 2, 1]


# -- catch-up by seq -------------------------------------------------------------------------


@pytest.mark.django_db
def test_rest_after_seq_pages_forward(pair, settings):
    settings.SUPPORT_CHAT = {"HISTORY_PAGE_SIZE": 2}
    alice, conv = pair["alice"], pair["conv"]
    for i in range(5):
        send(conv, alice, f"m{i}")
    api = APIClient()
    api.force_authenticate(alice)
    response = api.get(f"/api/chat/conversations/{conv.pk}/messages/?after_seq=1")
    assert response.status_code == 200
    body = response.json()
    assert [m["seq"] for m in body["results"]] == [2, 3]
    body = api.get(body["next"]).json()
    assert [m["seq"] for m in body["results"]] == [4, 5]
    assert body["next"] is None
    # after_seq wins over after; bad values are a 400, not a 500
    both = api.get(f"/api/chat/conversations/{conv.pk}/messages/?after_seq=4&after=0").json()
    assert [m["seq"] for m in both["results"]] == [5]
    for bad in ("-1", "x", "1.5", str(2**40)):
        response = api.get(f"/api/chat/conversations/{conv.pk}/messages/?after_seq={bad}")
        assert response.status_code == 400, bad
    detail = api.get(f"/api/chat/conversations/{conv.pk}/").json()
    assert detail["last_seq"] == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_ws_sync_after_seq(layer, chat_settings, sockets):
    chat_settings(HISTORY_PAGE_SIZE=3)

    def create() -> dict[str, Any]:
        alice = make_user("alice")
        conv = Conversation.objects.create(customer=alice)
        for i in range(5):
            send(conv, alice, f"m{i}")
        return {"alice": alice, "conv": conv}

    data = await db(create)()
    connected, code, alice = await open_socket(f"/ws/chat/user/{data['conv'].pk}/", data["alice"])
    assert connected, code
    sockets.append(alice)
    hello = await alice.expect("hello")
    assert hello["data"]["conversation"]["last_seq"] == 5
    await alice.send("sync", {"after_seq": 1}, ref="s1")
    page = await alice.expect("sync")
    assert page["ref"] == "s1"
    assert [m["seq"] for m in page["data"]["messages"]] == [2, 3, 4]
    assert page["data"]["has_more"] is True
    assert page["data"]["conversation"]["last_seq"] == 5
    await alice.send("sync", {"after_seq": 4})
    page = await alice.expect("sync")
    assert [m["seq"] for m in page["data"]["messages"]] == [5]
    assert page["data"]["has_more"] is False
    await alice.send("sync", {"after_seq": -1})
    error = await alice.expect("error")
    assert error["data"]["code"] == "invalid"
    await alice.send("sync", {"after_id": 0})  # the older form still works
    page = await alice.expect("sync")
    assert [m["seq"] for m in page["data"]["messages"]] == [1, 2, 3]


# -- concurrency (PostgreSQL) ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_get_seq_1_to_n_without_holes():
    assert connection.vendor == "postgresql", "this test needs PostgreSQL (DATABASE_URL)"
    alice = make_user("alice")
    staff = make_user("sam", is_staff=True)
    conv = Conversation.objects.create(customer=alice)
    writers, per_writer = 6, 25
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []
    resend = uuid.uuid4()

    def writer(n: int) -> None:
        try:
            mine = Conversation.objects.get(pk=conv.pk)
            user = staff if n % 2 else alice
            barrier.wait(timeout=30)
            for i in range(per_writer):
                services.send_message(mine, user, f"{n}/{i}", uuid.uuid4())
                if n == 0 and i % 5 == 0:  # the same resend, racing the others
                    services.send_message(mine, alice, "again", resend)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    rows = list(Message.objects.filter(conversation=conv).order_by("id").values_list("seq"))
    total = writers * per_writer + 1
    # 1..n without holes, and in id (= commit) order
    assert [seq for (seq,) in rows] == list(range(1, total + 1))
    conv.refresh_from_db()
    assert conv.last_seq == total
