"""The sockets' database lanes (dbthreads.py, WS_DATABASE_THREADS): a send into one
conversation does not wait for a slow database call of another, while the calls of one
conversation still run one at a time, in order."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from django_support_chat import dbthreads
from django_support_chat.models import Conversation, Message

from .conftest import make_user, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def two(layer: str, chat_settings: Any) -> Any:
    chat_settings(WS_DATABASE_THREADS=4)

    def create() -> Any:
        alice, bob = make_user("alice"), make_user("bob")
        # Conversation ids that fall on different lanes (4 lanes: id % 4).
        a = Conversation.objects.create(customer=alice)
        b = Conversation.objects.create(customer=bob)
        while b.pk % 4 == a.pk % 4:
            b.delete()
            b = Conversation.objects.create(customer=bob)
        return (a, alice), (b, bob)

    return await database_sync_to_async(create)()


def test_lane_count_defaults(settings):
    settings.SUPPORT_CHAT = {}
    expected = 1 if connection.vendor == "sqlite" else 4
    assert dbthreads.lane_count() == expected
    settings.SUPPORT_CHAT = {"WS_DATABASE_THREADS": 3}
    assert dbthreads.lane_count() == 3


@pytest.mark.asyncio
async def test_a_held_lane_holds_only_its_conversation(two, sockets):
    (a, alice), (b, bob) = two
    socket_a = await _open(sockets, a, alice)
    socket_b = await _open(sockets, b, bob)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(20)

    holder = asyncio.ensure_future(dbthreads.run(a.pk, hold))
    try:
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        await socket_a.send(
            "message:send", {"text": "waits", "client_id": str(uuid.uuid4())}, ref="a"
        )
        await socket_b.send(
            "message:send", {"text": "passes", "client_id": str(uuid.uuid4())}, ref="b"
        )
        sent = await socket_b.expect("message:sent", timeout=5)
        assert sent["ref"] == "b"
        assert not holder.done()
        # a's send is queued behind the held call on its lane: not stored yet.
        assert await database_sync_to_async(Message.objects.filter(conversation=a).count)() == 0
    finally:
        release.set()
        await holder
    sent = await socket_a.expect("message:sent", timeout=5)
    assert sent["ref"] == "a"


@pytest.mark.asyncio
async def test_sends_of_one_conversation_keep_their_order(two, sockets):
    (a, alice), _ = two
    socket = await _open(sockets, a, alice)
    for i in range(20):
        await socket.send("message:send", {"text": f"m{i}", "client_id": str(uuid.uuid4())}, ref=i)
    refs = [(await socket.expect("message:sent", timeout=5))["ref"] for _ in range(20)]
    assert refs == list(range(20))
    texts = await database_sync_to_async(
        lambda: list(
            Message.objects.filter(conversation=a).order_by("seq").values_list("text", flat=True)
        )
    )()
    assert texts == [f"m{i}" for i in range(20)]


async def _open(sockets: list, conversation: Conversation, user: Any) -> Any:
    connected, code, socket = await open_socket(f"/ws/chat/user/{conversation.pk}/", user)
    assert connected, code
    sockets.append(socket)
    await socket.expect("hello")
    return socket


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(pid: int) -> None:
    """pg_terminate_backend from a connection of its own (not a lane's)."""
    import psycopg

    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"] or None,
        dbname=s["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(200):  # gone from pg_stat_activity once it has exited
            row = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if row is None:
                return
            threading.Event().wait(0.02)
    raise AssertionError(f"backend {pid} still there")


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_a_lane_keeps_its_connection_and_replaces_a_broken_one(two):
    """Consecutive calls on a lane use one PostgreSQL backend (no pool round trip per
    call). A backend killed meanwhile fails the one call that finds it (the chat answers
    that ``unavailable``); the lane closes it and the next call gets a new one."""
    assert connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL)"
    (a, _), _ = two
    first = await dbthreads.run(a.pk, backend_pid)
    assert await dbthreads.run(a.pk, backend_pid) == first
    await asyncio.get_running_loop().run_in_executor(None, terminate, first)
    from django.db import OperationalError

    with pytest.raises(OperationalError):
        await dbthreads.run(a.pk, backend_pid)
    replaced = await dbthreads.run(a.pk, backend_pid)
    assert replaced != first
    assert await dbthreads.run(a.pk, backend_pid) == replaced


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_a_lane_idle_too_long_gets_a_checked_connection(two, monkeypatch):
    """Unused past IDLE_RECHECK, the connection is checked before the next call and
    replaced if PostgreSQL closed it meanwhile: no error at all."""
    assert connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL)"
    (a, _), _ = two
    first = await dbthreads.run(a.pk, backend_pid)
    monkeypatch.setattr(dbthreads, "IDLE_RECHECK", 0.0)
    await asyncio.get_running_loop().run_in_executor(None, terminate, first)
    assert await dbthreads.run(a.pk, backend_pid) != first


@pytest.mark.asyncio
async def test_a_call_left_in_a_transaction_does_not_leak_it(two):
    """A call that leaves autocommit off: its connection is closed (rolled back), and the
    next call on the lane starts clean."""
    from django.db import transaction

    (a, _), _ = two

    def leave_open() -> None:
        transaction.set_autocommit(False)
        Conversation.objects.filter(pk=a.pk).update(status="closed")

    await dbthreads.run(a.pk, leave_open)
    assert await dbthreads.run(a.pk, transaction.get_autocommit) is True
    status = await database_sync_to_async(
        lambda: Conversation.objects.values_list("status", flat=True).get(pk=a.pk)
    )()
    assert status == "open"  # the update was never committed
