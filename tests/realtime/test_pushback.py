"""Pushback on WebSockets (#14; docs/protocol.md, "Slowing down"), on PostgreSQL through
the full ASGI stack: a conversation row locked from another connection makes sends pile
up; past SEND_QUEUE_LIMIT the next ones are answered ``overloaded`` at once, with
``retry_after`` and their ``ref``, and store nothing. Once the lock is gone, every send
(the retried ones with the same client_id) is stored exactly once; a socket that went away
while its send waited gives its slot back when the database call really ends.

An OperationalError from PostgreSQL answers ``unavailable`` with ``retry_after`` (not
``server_error``), and the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from django_support_chat import sendqueue
from django_support_chat.models import Conversation, Message

from ..test_pushback import RowLock, rejected
from .conftest import Socket, make_user, open_socket

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("layer", ["memory"], indirect=True)]

db = database_sync_to_async


async def until(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"{what} within {timeout}s")
        await asyncio.sleep(0.01)


async def send(socket: Socket, client_id: str, ref: str, text: str = "hi") -> None:
    await socket.send("message:send", {"text": text, "client_id": client_id}, ref=ref)


def stored_count() -> int:
    try:
        return Message.objects.count()
    finally:
        connection.close()


def by_ref(ref: str) -> Any:
    return lambda frame: frame.get("ref") == ref


@pytest.fixture
def people(transactional_db: None) -> dict[str, Any]:
    assert connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL)"
    alice = make_user("alice")
    return {"alice": alice, "conv": Conversation.objects.create(customer=alice)}


@pytest.mark.asyncio
async def test_sends_behind_a_locked_row_are_pushed_back_then_stored_once(
    people, sockets, chat_settings
):
    chat_settings(SEND_QUEUE_LIMIT=3, SEND_RETRY_AFTER=0.75)
    path = f"/ws/chat/user/{people['conv'].pk}/"
    tabs = []
    for _ in range(6):  # one frame at a time per socket: one socket per pending send
        connected, code, socket = await open_socket(path, people["alice"])
        assert connected, code
        sockets.append(socket)
        await socket.expect("hello")
        tabs.append(socket)
    ids = [str(uuid.uuid4()) for _ in tabs]

    lock = RowLock(people["conv"].pk)
    await asyncio.get_running_loop().run_in_executor(None, lock.__enter__)
    try:
        for n in range(3):
            await send(tabs[n], ids[n], f"m{n}")
        await until(lambda: sendqueue.gate.pending == 3, 10, "three sends waiting")

        # The limit is reached: the next sends are answered at once, nothing is stored.
        before = rejected("ws")
        started = time.monotonic()
        for n in (3, 4):
            await send(tabs[n], ids[n], f"m{n}")
        # SEND_RETRY_AFTER x (taken + refused) / taken: 3 taken, then 0 and 1 refused.
        for n, wait in ((3, 0.75), (4, 1.0)):
            frame = await tabs[n].expect("error", timeout=1, where=by_ref(f"m{n}"))
            assert frame["data"] == {
                "code": "overloaded",
                "message": "The server is busy; try again shortly.",
                "retry_after": wait,
            }
        assert time.monotonic() - started < 1.0
        assert sendqueue.gate.pending == 3
        assert rejected("ws") == before + 2

        # A tab closed while its send waits: the frame is cancelled, the database call is
        # not (it is shielded) and keeps its slot until it ends.
        with contextlib.suppress(asyncio.TimeoutError):
            await tabs[2].comm.disconnect(timeout=0.3)
        sockets.remove(tabs[2])
        assert sendqueue.gate.pending == 3
        # (Not through the consumers' database thread: it waits behind the sends.)
        assert await asyncio.get_running_loop().run_in_executor(None, stored_count) == 0
    finally:
        await asyncio.get_running_loop().run_in_executor(None, lock.release)

    for n in (0, 1):
        sent = await tabs[n].expect("message:sent", timeout=10, where=by_ref(f"m{n}"))
        assert sent["data"]["created"] is True
        assert sent["data"]["message"]["client_id"] == ids[n]
    await until(lambda: sendqueue.gate.pending == 0, 10, "every slot given back")

    # The refused ones, sent again after retry_after with the same client_id, are stored;
    # a resend of a stored one is not stored again.
    await asyncio.sleep(1.0)
    for n in (3, 4):
        await send(tabs[n], ids[n], f"again{n}")
        sent = await tabs[n].expect("message:sent", timeout=5, where=by_ref(f"again{n}"))
        assert sent["data"]["created"] is True
    await send(tabs[5], ids[0], "dup")
    dup = await tabs[5].expect("message:sent", where=by_ref("dup"))
    assert dup["data"]["created"] is False

    stored = Counter(
        str(c)
        for c in await db(lambda: list(Message.objects.values_list("client_id", flat=True)))()
    )
    assert stored == dict.fromkeys(ids[:5], 1), "nothing lost, nothing twice"
    assert ids[5] not in stored


def terminate_lock_waiters() -> int:
    """pg_terminate_backend() on the connections of the test database waiting for a lock:
    PostgreSQL closes them ("terminating connection due to administrator command")."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return len(cursor.fetchall())
    finally:
        connection.close()


@pytest.mark.asyncio
async def test_an_operational_error_answers_unavailable_not_server_error(
    people, sockets, chat_settings
):
    """A real OperationalError on the send's query: it waits for the locked conversation
    row, and PostgreSQL terminates its connection meanwhile (as a database that restarts
    does; a pool timeout or "too many clients" raise OperationalError too, see
    tests/test_pushback.py). The frame gets ``unavailable`` with ``retry_after``, the
    socket stays open, the slot is given back, and the retry is stored once."""
    chat_settings(SEND_RETRY_AFTER=1.0)
    connected, code, socket = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", people["alice"]
    )
    assert connected, code
    sockets.append(socket)
    await socket.expect("hello")
    client_id = str(uuid.uuid4())
    loop = asyncio.get_running_loop()
    lock = RowLock(people["conv"].pk)
    await loop.run_in_executor(None, lock.__enter__)
    try:
        await send(socket, client_id, "m1")
        deadline = loop.time() + 10
        while not await loop.run_in_executor(None, terminate_lock_waiters):
            assert loop.time() < deadline, "the send never waited for the lock"
            await asyncio.sleep(0.02)
        frame = await socket.expect("error", timeout=5, where=by_ref("m1"))
    finally:
        await loop.run_in_executor(None, lock.release)
    assert frame["data"] == {
        "code": "unavailable",
        "message": "The service is unavailable; try again shortly.",
        "retry_after": 1.0,
    }
    assert sendqueue.gate.pending == 0
    assert rejected("ws", "support_chat_db_unavailable_total") >= 1
    assert await loop.run_in_executor(None, stored_count) == 0
    await send(socket, client_id, "m2")
    sent = await socket.expect("message:sent", timeout=5, where=by_ref("m2"))
    assert sent["data"]["created"] is True
    assert await db(Message.objects.filter(client_id=client_id).count)() == 1


@pytest.mark.asyncio
async def test_a_refused_send_sent_again_is_stored_while_the_gate_is_full(
    people, sockets, chat_settings
):
    """Other sends in progress fill the gate: a frame is refused, a new one too; the first,
    sent again with its client_id (as the widget does after retry_after), is owed a place
    and stored, while the queue is still full."""
    chat_settings(SEND_QUEUE_LIMIT=1, SEND_RETRY_AFTER=0.5)
    connected, code, socket = await open_socket(
        f"/ws/chat/user/{people['conv'].pk}/", people["alice"]
    )
    assert connected, code
    sockets.append(socket)
    await socket.expect("hello")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    taken = sendqueue.gate.try_acquire()
    assert taken is not None
    try:
        for client_id, ref in ((first, "a"), (second, "b")):
            await send(socket, client_id, ref)
            frame = await socket.expect("error", where=by_ref(ref))
            assert frame["data"]["code"] == "overloaded"
        await send(socket, first, "a2")
        sent = await socket.expect("message:sent", where=by_ref("a2"))
        assert sent["data"]["created"] is True
        assert sent["data"]["message"]["client_id"] == first
        await send(socket, str(uuid.uuid4()), "c")  # a new send: still refused
        assert (await socket.expect("error", where=by_ref("c")))["data"]["code"] == "overloaded"
    finally:
        taken.release()
    stored = await db(
        lambda: [str(c) for c in Message.objects.values_list("client_id", flat=True)]
    )()
    assert stored == [first]
