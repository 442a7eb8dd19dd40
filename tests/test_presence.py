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
