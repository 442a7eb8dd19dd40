"""Who is online: counted per connection, kept alive by heartbeats, expiring on its own.

Each open socket is one entry with an expiry time (now + ``PRESENCE_TTL``), refreshed by
heartbeats. A user is online while at least one entry is live, so two tabs keep a user
online until both are gone, and a worker that dies without running ``disconnect()``
leaves entries that simply expire. Redis sorted sets (score = expiry) hold the entries
when channels-redis is configured; an in-process store stands in for the in-memory layer.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from django.conf import settings

from .conf import chat_settings


def _staff_key() -> str:
    return f"{chat_settings.PRESENCE_KEY_PREFIX}:staff"


def _user_key(user_id: int) -> str:
    return f"{chat_settings.PRESENCE_KEY_PREFIX}:user:{int(user_id)}"


class PresenceStore:
    """Interface. ``connect`` reports whether the user came online; ``disconnect`` whether no
    live connection of the user is left."""

    async def connect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        raise NotImplementedError

    async def heartbeat(self, user_id: int, conn_id: str, staff: bool) -> None:
        raise NotImplementedError

    async def refresh(self, connections: list[tuple[int, str, bool]]) -> None:
        """Renew the entries of many live connections, ``(user_id, conn_id, staff)`` each.
        Workers call it once per heartbeat interval for all their open sockets."""
        for user_id, conn_id, staff in connections:
            await self.heartbeat(user_id, conn_id, staff)

    async def disconnect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        raise NotImplementedError

    async def online(self, user_ids: list[int]) -> set[int]:
        raise NotImplementedError

    async def staff_online(self) -> bool:
        raise NotImplementedError

    async def is_online(self, user_id: int) -> bool:
        return bool(await self.online([user_id]))


class MemoryPresenceStore(PresenceStore):
    """Single-process store for development and the in-memory channel layer."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, float]] = {}

    def _live(self, key: str, now: float) -> dict[str, float]:
        entries = self._entries.get(key, {})
        for conn, expiry in list(entries.items()):
            if expiry <= now:
                del entries[conn]
        return entries

    def _touch(self, key: str, conn_id: str) -> bool:
        now = time.monotonic()
        entries = self._live(key, now)
        was_online = bool(entries)
        entries[conn_id] = now + chat_settings.PRESENCE_TTL
        self._entries[key] = entries
        return not was_online

    def _drop(self, key: str, conn_id: str) -> bool:
        entries = self._live(key, time.monotonic())
        entries.pop(conn_id, None)
        # Offline once nothing live is left, even if this entry had already expired.
        return not entries

    async def connect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        if staff:
            self._touch(_staff_key(), conn_id)
        return self._touch(_user_key(user_id), conn_id)

    async def heartbeat(self, user_id: int, conn_id: str, staff: bool) -> None:
        await self.connect(user_id, conn_id, staff)

    async def disconnect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        if staff:
            self._drop(_staff_key(), conn_id)
        return self._drop(_user_key(user_id), conn_id)

    async def online(self, user_ids: list[int]) -> set[int]:
        now = time.monotonic()
        return {uid for uid in user_ids if self._live(_user_key(uid), now)}

    async def staff_online(self) -> bool:
        return bool(self._live(_staff_key(), time.monotonic()))

    def clear(self) -> None:
        self._entries.clear()


# Adds the connection and reports whether it is the user's first live one.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return before
"""
# Removes the connection and reports whether the user has no live one left.
_DISCONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
return {removed, redis.call('ZCARD', KEYS[1])}
"""


# Renews many entries: KEYS[i] gets member ARGV[i + 2] with score ARGV[1] (its expiry).
_REFRESH = """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1], ARGV[i + 2])
  redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""
REFRESH_CHUNK = 500  # entries per script call in ``refresh``


class RedisPresenceStore(PresenceStore):
    """Presence in Redis, shared by every worker. One small pool per event loop."""

    def __init__(self, url: str, max_connections: int) -> None:
        self.url = url
        self.max_connections = max_connections
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections, timeout=5
            )
            client = aioredis.Redis(connection_pool=pool)
            self._clients[loop] = client
        return client

    @staticmethod
    def _now() -> float:
        return time.time()

    async def _add(self, key: str, conn_id: str) -> bool:
        now = self._now()
        ttl = chat_settings.PRESENCE_TTL
        before = await self._client().eval(_CONNECT, 1, key, now, now + ttl, conn_id, ttl * 2)
        return int(before) == 0

    async def _remove(self, key: str, conn_id: str) -> bool:
        _removed, left = await self._client().eval(_DISCONNECT, 1, key, self._now(), conn_id)
        # Offline once nothing live is left, even if this entry had already expired.
        return int(left) == 0

    async def connect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        if staff:
            await self._add(_staff_key(), conn_id)
        return await self._add(_user_key(user_id), conn_id)

    async def heartbeat(self, user_id: int, conn_id: str, staff: bool) -> None:
        await self.refresh([(user_id, conn_id, staff)])

    async def refresh(self, connections: list[tuple[int, str, bool]]) -> None:
        # One script call per chunk: packing thousands of separate commands would hold the
        # event loop for tens of milliseconds every heartbeat interval.
        ttl = chat_settings.PRESENCE_TTL
        expiry = self._now() + ttl
        pairs = [
            (key, conn_id)
            for user_id, conn_id, staff in connections
            for key in [_user_key(user_id)] + ([_staff_key()] if staff else [])
        ]
        client = self._client()
        for start in range(0, len(pairs), REFRESH_CHUNK):
            chunk = pairs[start : start + REFRESH_CHUNK]
            keys = [key for key, _conn in chunk]
            members = [conn for _key, conn in chunk]
            await client.eval(_REFRESH, len(keys), *keys, expiry, ttl * 2, *members)

    async def disconnect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        if staff:
            await self._remove(_staff_key(), conn_id)
        return await self._remove(_user_key(user_id), conn_id)

    async def online(self, user_ids: list[int]) -> set[int]:
        if not user_ids:
            return set()
        now = self._now()
        pipe = self._client().pipeline(transaction=False)
        for uid in user_ids:
            pipe.zcount(_user_key(uid), now, "+inf")
        counts = await pipe.execute()
        return {uid for uid, count in zip(user_ids, counts, strict=True) if count}

    async def staff_online(self) -> bool:
        return bool(await self._client().zcount(_staff_key(), self._now(), "+inf"))


def _redis_url_from_layer() -> str | None:
    layer = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get("default", {})
    if not str(layer.get("BACKEND", "")).startswith("channels_redis"):
        return None
    hosts = layer.get("CONFIG", {}).get("hosts") or []
    if not hosts:
        return "redis://localhost:6379/0"
    host = hosts[0]
    if isinstance(host, dict):
        host = host.get("address")
    if isinstance(host, (list, tuple)):
        return f"redis://{host[0]}:{host[1]}/0"
    return str(host) if host else None


_store: PresenceStore | None = None
_store_key: Any = None


def get_presence_store() -> PresenceStore:
    """The configured store (Redis when available, else in-process), built once."""
    global _store, _store_key
    url = chat_settings.PRESENCE_REDIS_URL or _redis_url_from_layer()
    key = (url, chat_settings.PRESENCE_REDIS_MAX_CONNECTIONS)
    if _store is None or key != _store_key:
        _store = (
            RedisPresenceStore(url, chat_settings.PRESENCE_REDIS_MAX_CONNECTIONS)
            if url
            else MemoryPresenceStore()
        )
        _store_key = key
    return _store
