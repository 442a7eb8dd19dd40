"""The presence stores' bulk renewal (``refresh``), against a real redis-server and in memory."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from django_support_chat import presence
from django_support_chat.presence import MemoryPresenceStore, RedisPresenceStore

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["memory", "redis"])
def store(request, settings):
    settings.SUPPORT_CHAT = {"PRESENCE_TTL": 2, "HEARTBEAT_INTERVAL": 1}
    if request.param == "memory":
        return MemoryPresenceStore()
    from tests.realtime.conftest import redis_url

    url = redis_url()
    settings.SUPPORT_CHAT = {
        **settings.SUPPORT_CHAT,
        "PRESENCE_KEY_PREFIX": f"test-refresh-{uuid.uuid4().hex[:8]}",
    }
    return RedisPresenceStore(url, max_connections=5)


async def test_refresh_renews_every_entry_across_chunks(store, monkeypatch):
    monkeypatch.setattr(presence, "REFRESH_CHUNK", 7)  # several script calls
    connections = [(user_id, f"conn-{user_id}", user_id == 3) for user_id in range(1, 21)]
    for user_id, conn_id, staff in connections:
        await store.connect(user_id, conn_id, staff)
    stale = (99, "conn-99", False)  # on a worker that died: never renewed
    await store.connect(*stale)
    for _ in range(3):  # 3 s: past the 2 s TTL of the first entries
        await asyncio.sleep(1)
        await store.refresh(connections)
    ids = [user_id for user_id, _conn, _staff in connections]
    assert await store.online([*ids, 99]) == set(ids)
    assert await store.staff_online()


async def test_refresh_of_nothing_is_harmless(store):
    await store.refresh([])
    assert await store.online([1]) == set()


async def test_refresh_after_disconnect_does_not_re_add_the_entry(store):
    """The watchdog lists a socket, the socket disconnects, then the refresh arrives."""
    await store.connect(1, "conn-1", True)
    await store.connect(2, "conn-2", False)
    assert await store.disconnect(1, "conn-1", True) is True
    revived = await store.refresh([(1, "conn-1", True), (2, "conn-2", False)])
    assert revived == set()
    assert await store.online([1, 2]) == {2}
    assert await store.staff_online() is False
    await store.heartbeat(1, "conn-1", True)  # a single renewal neither
    assert await store.online([1]) == set()
    assert await store.disconnect(2, "conn-2", False) is True
    assert await store.online([1, 2]) == set()


async def test_a_disconnect_racing_with_refreshes_wins(store, monkeypatch):
    """Many users with two sockets each all leave while bulk refreshes (listing them all)
    run at the same time: every user ends offline, and the last disconnect of each user
    reports it (so the lobby is told), whatever order the calls reach the store in."""
    monkeypatch.setattr(presence, "REFRESH_CHUNK", 16)  # many script calls in flight
    connections = [(uid, f"c{uid}-{tab}", uid % 5 == 0) for uid in range(1, 101) for tab in (1, 2)]
    for conn in connections:
        await store.connect(*conn)

    async def leave(user_id: int) -> bool:
        first = await store.disconnect(*connections[2 * user_id - 2])
        await asyncio.sleep(0)
        last = await store.disconnect(*connections[2 * user_id - 1])
        return not first and last

    results = await asyncio.gather(
        *(store.refresh(connections) for _ in range(5)),
        *(leave(uid) for uid in range(1, 101)),
        *(store.refresh(connections) for _ in range(5)),
    )
    assert all(results[5:105]), "some user's last disconnect did not report offline"
    assert all(revived == set() for revived in results[:5] + results[105:])
    assert await store.online(list(range(1, 101))) == set()
    assert await store.staff_online() is False


async def test_refresh_re_adds_a_live_socket_whose_entry_expired(store):
    """A worker that could not renew for a whole TTL: its sockets still live, so their
    entries come back, and the users who were offline meanwhile are reported."""
    await store.connect(1, "conn-1", True)
    await store.connect(2, "conn-2a", False)
    await store.connect(2, "conn-2b", False)
    await asyncio.sleep(2.2)  # past the 2 s TTL: everyone expired
    assert await store.online([1, 2]) == set()
    assert await store.refresh([(1, "conn-1", True), (2, "conn-2a", False)]) == {1, 2}
    assert await store.online([1, 2]) == {1, 2}
    assert await store.staff_online() is True
    assert await store.refresh([(2, "conn-2b", False)]) == set()  # 2 was online again
