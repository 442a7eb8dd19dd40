"""Concurrent writers on a real PostgreSQL: no lost increments, no duplicate sends, ids in
commit order. SQLite serialises writers, so these tests only mean something on PostgreSQL;
deselect them there with ``-m "not postgres"`` (they fail, not skip, on another database)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from unittest import mock

import pytest
from django.db import connection

from django_support_chat import services
from django_support_chat.models import Conversation, Message, Side

from .factories import ConversationFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def require_postgresql() -> None:
    assert connection.vendor == "postgresql", (
        f"the concurrency tests need PostgreSQL, not {connection.vendor}: set "
        "DATABASE_URL=postgres://... or deselect them with -m 'not postgres'"
    )


def run_concurrently(workers: list[Callable[[], None]], timeout: float = 120) -> None:
    """Start every worker at the same moment in its own thread (and DB connection)."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=30)
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker hung (deadlock?)"
    if errors:
        raise errors[0]


def unread_after_watermark(conversation: Conversation, side: Side) -> int:
    read_id = conversation.user_read_id if side == Side.USER else conversation.staff_read_id
    return Message.objects.filter(
        conversation=conversation, sender_side=side.other, id__gt=read_id
    ).count()


def test_sends_from_many_tabs_lose_no_increment():
    require_postgresql()
    customer = UserFactory(customer=True)
    conversation = ConversationFactory(customer=customer)
    tabs, per_tab = 4, 50

    def tab() -> None:
        mine = Conversation.objects.get(pk=conversation.pk)
        for n in range(per_tab):
            services.send_message(mine, customer, f"msg {n}", uuid.uuid4())

    run_concurrently([tab] * tabs)

    conversation.refresh_from_db()
    assert Message.objects.filter(conversation=conversation).count() == tabs * per_tab
    assert conversation.unread_staff_count == tabs * per_tab
    assert conversation.unread_user_count == 0
    newest = Message.objects.filter(conversation=conversation).latest("id")
    assert conversation.last_message_id == newest.pk
    assert conversation.user_read_id == conversation.user_delivered_id == newest.pk


def test_customers_and_staff_alternating_with_reads():
    require_postgresql()
    customers = [UserFactory(customer=True) for _ in range(3)]
    conversations = [ConversationFactory(customer=c) for c in customers]
    staff_members = [UserFactory(staff=True), UserFactory(staff=True)]
    customer_sends, staff_sends, reads = 50, 75, 25

    sent: dict[str, list[tuple[int, int]]] = defaultdict(list)  # worker -> (conv, id)

    def customer_worker(index: int) -> Callable[[], None]:
        def work() -> None:
            conversation = Conversation.objects.get(pk=conversations[index].pk)
            for n in range(customer_sends):
                message, created = services.send_message(
                    conversation, customers[index], f"c{index}-{n}", uuid.uuid4()
                )
                assert created
                sent[f"customer{index}"].append((conversation.pk, message.pk))
                if n % 5 == 4:
                    services.mark_read(conversation, customers[index])

        return work

    def staff_worker(index: int) -> Callable[[], None]:
        def work() -> None:
            mine = [Conversation.objects.get(pk=c.pk) for c in conversations]
            for n, conversation in zip(range(staff_sends), itertools.cycle(mine), strict=False):
                message, created = services.send_message(
                    conversation, staff_members[index], f"s{index}-{n}", uuid.uuid4()
                )
                assert created
                sent[f"staff{index}"].append((conversation.pk, message.pk))

        return work

    def staff_reader() -> None:
        mine = [Conversation.objects.get(pk=c.pk) for c in conversations]
        for _, conversation in zip(range(reads), itertools.cycle(mine), strict=False):
            newest = Message.objects.filter(conversation=conversation).order_by("-id").first()
            # Sometimes everything, sometimes up to a message that may be overtaken.
            services.mark_read(conversation, staff_members[0], newest.pk if newest else None)
            services.mark_delivered(conversation, staff_members[1], newest.pk if newest else 0)

    workers = [customer_worker(i) for i in range(3)] + [staff_worker(i) for i in range(2)]
    run_concurrently([*workers, staff_reader])

    total = 3 * customer_sends + 2 * staff_sends
    messages = list(Message.objects.order_by("id").values("id", "conversation_id", "created_at"))
    assert len(messages) == total
    assert len({m["id"] for m in messages}) == total
    assert Message.objects.values("client_id").distinct().count() == total
    returned = [pk for worker in sent.values() for _, pk in worker]
    assert sorted(returned) == [m["id"] for m in messages]  # every send stored once

    # Each worker saw its own messages get growing ids, conversation by conversation.
    for worker, pairs in sent.items():
        for conversation in conversations:
            ids = [pk for conv_pk, pk in pairs if conv_pk == conversation.pk]
            assert ids == sorted(ids) and len(set(ids)) == len(ids), worker

    for conversation in conversations:
        conversation.refresh_from_db()
        rows = [m for m in messages if m["conversation_id"] == conversation.pk]
        # Ids grow in creation order (sends to one conversation are serialised).
        created = [m["created_at"] for m in rows]
        assert created == sorted(created)
        assert conversation.last_message_id == rows[-1]["id"]
        assert conversation.last_message_at == rows[-1]["created_at"]
        # The counters agree exactly with the watermarks.
        assert conversation.unread_user_count == unread_after_watermark(conversation, Side.USER)
        assert conversation.unread_staff_count == unread_after_watermark(conversation, Side.STAFF)
        for side in ("user", "staff"):
            read_id = getattr(conversation, f"{side}_read_id")
            delivered_id = getattr(conversation, f"{side}_delivered_id")
            assert 0 < read_id <= delivered_id <= rows[-1]["id"]

    # The customer count per conversation is exact.
    for index, conversation in enumerate(conversations):
        assert (
            Message.objects.filter(
                conversation=conversation, sender=customers[index], sender_side=Side.USER
            ).count()
            == customer_sends
        )


def test_concurrent_resends_store_one_message():
    require_postgresql()
    customer = UserFactory(customer=True)
    conversation = ConversationFactory(customer=customer)
    client_id = uuid.uuid4()
    results: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def resend() -> None:
        mine = Conversation.objects.get(pk=conversation.pk)
        message, created = services.send_message(mine, customer, "only once", client_id)
        with lock:
            results.append((message.pk, created))

    run_concurrently([resend] * 5)

    assert Message.objects.filter(client_id=client_id).count() == 1
    stored = Message.objects.get(client_id=client_id)
    assert len(results) == 5
    assert {pk for pk, _ in results} == {stored.pk}
    assert [created for _, created in results].count(True) == 1
    conversation.refresh_from_db()
    assert conversation.unread_staff_count == 1


def test_concurrent_first_requests_start_one_conversation():
    """Two tabs flushing the offline queue at once: both first ``GET conversations/``
    must land in one conversation, or the customer's queued messages are split."""
    require_postgresql()
    customer = UserFactory(customer=True)
    results: list[tuple[int, bool]] = []
    lock = threading.Lock()
    lookup = services._latest_conversation

    def slow_lookup(user: object) -> Conversation | None:
        found = lookup(user)
        time.sleep(0.05)  # every request looks before any of them creates
        return found

    def first_request() -> None:
        conversation, created = services.get_or_start_conversation(customer)
        services.send_message(conversation, customer, "queued", uuid.uuid4())
        with lock:
            results.append((conversation.pk, created))

    with mock.patch.object(services, "_latest_conversation", slow_lookup):
        run_concurrently([first_request] * 8)

    [conversation] = Conversation.objects.filter(customer=customer)
    assert {pk for pk, _created in results} == {conversation.pk}
    assert [created for _pk, created in results].count(True) == 1
    assert Message.objects.filter(conversation=conversation).count() == 8
    conversation.refresh_from_db()
    assert conversation.unread_staff_count == 8
