"""Who is online: counted per connection, kept alive by heartbeats, expiring on its own.

Each open socket is one entry with an expiry time (now + ``PRESENCE_TTL``), refreshed by
heartbeats. A user is online while at least one entry is live, so two tabs keep a user
online until both are gone, and a worker that dies without running ``disconnect()``
leaves entries that simply expire. Redis sorted sets (score = expiry) hold the entries
when channels-redis is configured; an in-process store stands in for the in-memory layer.

A disconnect leaves a tombstone (the connection id, kept ``2 * PRESENCE_TTL``) next to the
entries, and the bulk ``refresh`` never writes an entry whose connection has one: a
refresh that was already on its way when the socket left cannot bring the entry back,
whichever of the two reaches the store first.
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


def _gone_key() -> str:
    """Tombstones: connections that disconnected (score = when the tombstone expires)."""
    return f"{chat_settings.PRESENCE_KEY_PREFIX}:gone"


class PresenceStore:
    """Interface. ``connect`` reports whether the user came online; ``disconnect`` whether no
    live connection of the user is left."""

    async def connect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        raise NotImplementedError

    async def heartbeat(self, user_id: int, conn_id: str, staff: bool) -> None:
        raise NotImplementedError

    async def refresh(self, connections: list[tuple[int, str, bool]]) -> set[int]:
        """Renew the entries of many live connections, ``(user_id, conn_id, staff)`` each.
        Workers call it once per heartbeat interval for all their open sockets.

        A connection that has disconnected is never written back, even if the caller still
        listed it. An entry that expired while its socket lived (the worker could not renew
        it for a whole ``PRESENCE_TTL``) is written again; the users who were offline until
        then are returned, so the caller can announce them online again."""
        raise NotImplementedError

    async def disconnect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        raise NotImplementedError

    async def online(self, user_ids: list[int]) -> set[int]:
        raise NotImplementedError

    async def staff_online(self) -> bool:
        raise NotImplementedError

    async def is_online(self, user_id: int) -> bool:
        return bool(await self.online([user_id]))

    async def connection_count(self, user_id: int) -> int:
        """The user's live connections on every worker (``WS_MAX_SOCKETS_PER_USER``)."""
        raise NotImplementedError

    async def ping(self) -> None:
        """Raise if the store cannot answer (the readiness check, health.py)."""

    async def aclose(self) -> None:
        """Close the connections this event loop opened. For sync callers that run one
        loop per call (``async_to_sync`` in a task worker), which would leave them open."""


class MemoryPresenceStore(PresenceStore):
    """Single-process store for development and the in-memory channel layer."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, float]] = {}
        self._gone: dict[str, float] = {}  # tombstones: conn_id -> when it may be forgotten
        self._gone_pruned_at = 0.0

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
        await self.refresh([(user_id, conn_id, staff)])

    async def refresh(self, connections: list[tuple[int, str, bool]]) -> set[int]:
        now = time.monotonic()
        expiry = now + chat_settings.PRESENCE_TTL
        revived: set[int] = set()
        for user_id, conn_id, staff in connections:
            if conn_id in self._gone:
                continue  # disconnected meanwhile: never re-add
            for key in [_user_key(user_id)] + ([_staff_key()] if staff else []):
                entries = self._live(key, now)
                if conn_id not in entries and not entries and key != _staff_key():
                    revived.add(user_id)
                entries[conn_id] = expiry
                self._entries[key] = entries
        return revived

    async def disconnect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        now = time.monotonic()
        if now >= self._gone_pruned_at + chat_settings.PRESENCE_TTL:
            self._gone = {c: t for c, t in self._gone.items() if t > now}
            self._gone_pruned_at = now
        self._gone[conn_id] = now + 2 * chat_settings.PRESENCE_TTL
        if staff:
            self._drop(_staff_key(), conn_id)
        return self._drop(_user_key(user_id), conn_id)

    async def online(self, user_ids: list[int]) -> set[int]:
        now = time.monotonic()
        return {uid for uid in user_ids if self._live(_user_key(uid), now)}

    async def staff_online(self) -> bool:
        return bool(self._live(_staff_key(), time.monotonic()))

    async def connection_count(self, user_id: int) -> int:
        return len(self._live(_user_key(user_id), time.monotonic()))

    def clear(self) -> None:
        self._entries.clear()
        self._gone.clear()


# Adds the connection and reports whether it is the user's first live one.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return before
"""
# Removes the connection from KEYS[2] (the user's set) and KEYS[3] (staff, if given),
# leaves its tombstone in KEYS[1], and returns how many live entries the user has left.
# ARGV: now, conn_id, tombstone expiry, key TTL.
_DISCONNECT = """
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local left = 0
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
  redis.call('ZREM', KEYS[i], ARGV[2])
  if i == 2 then left = redis.call('ZCARD', KEYS[i]) end
end
return left
"""


# Renews many entries: KEYS[i] (i >= 2) gets member ARGV[i + 2] with score ARGV[2] (its
# expiry); KEYS[1] holds the tombstones. A live entry is renewed in place (ZADD XX). A
# missing or expired one is written again only if its connection left no tombstone, and
# then the positions (i - 1) of keys that had no live entry before are returned.
# ARGV: now, expiry, key TTL, members...
_REFRESH = """
local now = tonumber(ARGV[1])
local revived = {}
for i = 2, #KEYS do
  local key, conn = KEYS[i], ARGV[i + 2]
  local score = redis.call('ZSCORE', key, conn)
  if score and tonumber(score) > now then
    redis.call('ZADD', key, 'XX', ARGV[2], conn)
    redis.call('EXPIRE', key, ARGV[3])
  elseif not redis.call('ZSCORE', KEYS[1], conn) then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
    if redis.call('ZCARD', key) == 0 then revived[#revived + 1] = i - 1 end
    redis.call('ZADD', key, ARGV[2], conn)
    redis.call('EXPIRE', key, ARGV[3])
  end
end
return revived
"""
REFRESH_CHUNK = 500  # entries per script call in ``refresh``
# How long a caller waits for a free connection of the presence pool. Under a connect
# storm the event loop is slow to hand connections back; a slower connect is better
# than a consumer that crashes (1006) and a client that reconnects into the storm.
POOL_TIMEOUT = 20


class RedisPresenceStore(PresenceStore):
    """Presence in Redis, shared by every worker. One small pool per event loop."""

    def __init__(self, url: str, max_connections: int) -> None:
        self.url = url
        self.max_connections = max_connections
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        # One staff_online question in flight per event loop, shared by its callers.
        self._staff_checks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Future[bool]
        ] = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections, timeout=POOL_TIMEOUT
            )
            client = aioredis.Redis(connection_pool=pool)
            self._clients[loop] = client
        return client

    async def ping(self) -> None:
        await self._client().ping()

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()

    @staticmethod
    def _now() -> float:
        return time.time()

    async def _add(self, key: str, conn_id: str) -> bool:
        now = self._now()
        ttl = chat_settings.PRESENCE_TTL
        before = await self._client().eval(_CONNECT, 1, key, now, now + ttl, conn_id, ttl * 2)
        return int(before) == 0

    async def connect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        if staff:
            await self._add(_staff_key(), conn_id)
        return await self._add(_user_key(user_id), conn_id)

    async def heartbeat(self, user_id: int, conn_id: str, staff: bool) -> None:
        await self.refresh([(user_id, conn_id, staff)])

    async def refresh(self, connections: list[tuple[int, str, bool]]) -> set[int]:
        # One script call per chunk: packing thousands of separate commands would hold the
        # event loop for tens of milliseconds every heartbeat interval.
        ttl = chat_settings.PRESENCE_TTL
        now = self._now()
        # (key, conn_id, user_id if it is the user's own key else None)
        pairs: list[tuple[str, str, int | None]] = []
        for user_id, conn_id, staff in connections:
            pairs.append((_user_key(user_id), conn_id, user_id))
            if staff:
                pairs.append((_staff_key(), conn_id, None))
        client = self._client()
        revived: set[int] = set()
        for start in range(0, len(pairs), REFRESH_CHUNK):
            chunk = pairs[start : start + REFRESH_CHUNK]
            keys = [key for key, _conn, _uid in chunk]
            members = [conn for _key, conn, _uid in chunk]
            positions = await client.eval(
                _REFRESH, len(keys) + 1, _gone_key(), *keys, now, now + ttl, ttl * 2, *members
            )
            for position in positions or []:
                user_id = chunk[int(position) - 1][2]
                if user_id is not None:
                    revived.add(user_id)
        return revived

    async def disconnect(self, user_id: int, conn_id: str, staff: bool) -> bool:
        # One script: the tombstone and the removals are one step for every other client.
        now, ttl = self._now(), chat_settings.PRESENCE_TTL
        keys = [_gone_key(), _user_key(user_id)] + ([_staff_key()] if staff else [])
        left = await self._client().eval(
            _DISCONNECT, len(keys), *keys, now, conn_id, now + 2 * ttl, ttl * 2
        )
        # Offline once nothing live is left, even if this entry had already expired.
        return int(left) == 0

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
        # Every customer's hello asks this: during a connect storm thousands of identical
        # questions would queue for the pool. Callers arriving while one is on its way
        # share its answer (at most one round trip old; the watchdog re-checks anyway).
        loop = asyncio.get_running_loop()
        check = self._staff_checks.get(loop)
        if check is None or check.done():
            check = loop.create_task(self._ask_staff_online())
            self._staff_checks[loop] = check
        return await asyncio.shield(check)

    async def _ask_staff_online(self) -> bool:
        return bool(await self._client().zcount(_staff_key(), self._now(), "+inf"))

    async def connection_count(self, user_id: int) -> int:
        return int(await self._client().zcount(_user_key(user_id), self._now(), "+inf"))


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
