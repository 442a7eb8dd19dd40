"""WebSocket consumers: thin adapters between sockets, services and the channel layer.

Every inbound frame costs at most one ``database_sync_to_async`` hop, which calls a
service. State is never written here; consumers only fan out what services published.
Frames and close codes are documented in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import OperationalError
from django.utils.translation import gettext as _

from .. import dbthreads, events, metrics, ratelimits, roles, sendqueue, services, tokens
from ..conf import chat_settings
from ..exceptions import ChatError
from ..layerwatch import LayerWatch
from ..models import Conversation, Message, Side
from ..payloads import conversation_data, message_data
from ..presence import get_presence_store

logger = logging.getLogger("django_support_chat.realtime")

# Close codes (docs/protocol.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_FLOODING = 4429
CLOSE_TOO_MANY_SOCKETS = 4430
CLOSE_LOGGED_OUT = 4001
CLOSE_SERVICE_RESTART = 1012  # the channel layer stayed down (layerwatch.give_up_after)

CUSTOMERS_GROUP = "support_chat.customers"
FLOOD_WINDOW = 10.0
# A send to a socket returns at once unless the client's buffer is full (uvicorn waits for
# it to drain); one that took longer than this waited for its client.
CLIENT_WAIT = 0.005
# A socket whose frames are throttled logs it at most once per this many seconds (with
# how many throttled frames it stood for), so a client hammering a limit cannot flood
# the log (docs/operations.md, "Logging and errors").
THROTTLE_LOG_WINDOW = 60.0

# Why a handshake was refused, by close code (the ``reason`` of ``ws.refused``).
REFUSAL_REASONS = {
    CLOSE_UNAUTHENTICATED: "unauthenticated",
    CLOSE_FORBIDDEN: "forbidden",
    CLOSE_NOT_FOUND: "not_found",
    CLOSE_TOO_MANY_SOCKETS: "too_many_sockets",
}


class FrameError(Exception):
    scope: str | None = None  # the THROTTLE_RATES key of a "throttled" error

    def __init__(
        self, code: str, message: str, fields: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.fields, self.extra = code, message, fields, extra


def _throttle(user: Any, scope: str) -> None:
    """Count one frame of ``user`` in ``scope`` (a ``THROTTLE_RATES`` key); over the rate,
    the frame is answered ``throttled``. Called on the database thread, in the frame's one
    hop, before its query."""
    wait = ratelimits.check(user, scope)
    if wait is not None:
        error = FrameError(
            "throttled", _("Too many requests; try again shortly."), retry_after=round(wait or 1, 1)
        )
        error.scope = scope  # for the log line (receive), not sent to the client
        raise error


def _int_field(data: dict[str, Any], name: str, required: bool = True) -> int | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FrameError(
            "invalid",
            _("%(name)s must be a non-negative integer.") % {"name": name},
            {name: [_("Must be a non-negative integer.")]},
        )
    return value


class Watchdog:
    """One task per event loop, not one per socket (a task and its timer cost each idle
    socket a few KB). Every ``HEARTBEAT_INTERVAL`` it closes sockets whose client has been
    silent for two intervals (4408), renews the presence entries of the others in bulk,
    and re-checks their counterpart presence, batched per consumer class, so a peer whose
    worker died shows offline once its entry expires.

    Silence is judged fairly under load: a socket is only watched once ``connect()`` has
    finished (its clock starts then), a socket whose consumer is busy handling a message
    is not judged (frames may be queued behind it), and the grace grows by however late
    this task woke up (a busy event loop delays frames and the sweep alike)."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.sockets: set[BaseChatConsumer] = set()
        self.task: asyncio.Task[None] | None = None
        self.lag = 0.0  # how late the last sweep started (event loop congestion)
        self.layer: LayerWatch | None = None  # channel-layer health (layerwatch.py)
        self.layer_check: asyncio.Future[None] | None = None

    @classmethod
    def for_running_loop(cls) -> Watchdog:
        loop = asyncio.get_running_loop()
        watchdog = cls._by_loop.get(loop)
        if watchdog is None:
            watchdog = cls._by_loop[loop] = cls()
        return watchdog

    def add(self, socket: BaseChatConsumer) -> None:
        self.sockets.add(socket)
        if self.layer is None:
            self.layer = LayerWatch(resync=self.resync_all, give_up=self.close_all_restarting)
            self.check_layer()  # subscribes the probe and hooks reconnects at once
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    def discard(self, socket: BaseChatConsumer) -> None:
        self.sockets.discard(socket)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.sockets:
            started = loop.time()
            await asyncio.sleep(chat_settings.HEARTBEAT_INTERVAL)
            self.lag = max(0.0, loop.time() - started - chat_settings.HEARTBEAT_INTERVAL)
            try:
                await self.sweep()
            except Exception:  # a Redis hiccup must not stop the watchdog
                logger.exception("Heartbeat sweep failed")

    async def sweep(self) -> None:
        self.check_layer()
        await self.recheck_authorization()
        interval = chat_settings.HEARTBEAT_INTERVAL
        now = time.monotonic()
        limit = now - 2 * interval - self.lag
        by_class: dict[type[BaseChatConsumer], list[BaseChatConsumer]] = {}
        for socket in list(self.sockets):
            if socket.silent_since(limit, now):
                await self._guarded(socket.close_with(CLOSE_HEARTBEAT_TIMEOUT))
            else:
                by_class.setdefault(type(socket), []).append(socket)
        # Renew the presence of every socket still heard from, in a few pipelines: one
        # Redis round trip per heartbeat frame cost more than the rest of the heartbeat.
        # The store never re-adds the entry of a socket that disconnected meanwhile.
        live = [socket for sockets in by_class.values() for socket in sockets if socket.present]
        revived: set[int] = set()
        try:
            revived = await get_presence_store().refresh(
                [(s.user.pk, s.channel_name, s.side == Side.STAFF) for s in live]
            )
        except Exception:  # entries outlive a missed round (PRESENCE_TTL >= 2 intervals)
            logger.exception("Presence refresh failed")
        # Entries that expired while their sockets lived (no renewal for a whole TTL) are
        # back: whoever was told these users went offline is told they are online again.
        for socket in live:
            if socket.user.pk in revived and socket.present:
                revived.discard(socket.user.pk)
                await self._guarded(socket.broadcast_presence(online=True))
        for cls, sockets in by_class.items():
            updates = await cls.counterpart_presences(sockets)
            for socket, update in zip(sockets, updates, strict=True):
                if socket in self.sockets:  # not closed meanwhile
                    await self._guarded(socket.show_counterpart(update))

    @staticmethod
    async def _guarded(step: Any) -> None:
        try:
            await step
        except Exception:  # that socket is gone (StopConsumer included); the others go on
            logger.debug("Watchdog step failed", exc_info=True)

    async def recheck_authorization(self) -> None:
        """Authorization that lasts: every socket's user is looked up again (one query for
        the users of this worker, one for their sessions). Deleted or inactive users and
        ended sessions (cookie or token) close with 4401; staff sockets whose user the
        staff predicates no longer accept close with 4403 (docs/protocol.md)."""
        sockets = [s for s in list(self.sockets) if s.user is not None]
        if not sockets:
            return
        try:
            verdicts = await database_sync_to_async(tokens.recheck)(
                [(s.user.pk, s.auth_session_key, s.side == Side.STAFF) for s in sockets]
            )
        except Exception:  # a database hiccup: ask again next round, close nobody
            logger.exception("Re-checking the sockets' users failed")
            return
        for socket, (verdict, user) in zip(sockets, verdicts, strict=True):
            if verdict == tokens.ENDED:
                await self._guarded(socket.close_with(CLOSE_UNAUTHENTICATED))
            elif verdict == tokens.NOT_STAFF:
                await self._guarded(socket.close_with(CLOSE_FORBIDDEN))
            elif user is not None:
                socket.user = user  # fresh flags for the services this socket calls

    # -- channel-layer health (docs/protocol.md, "Delivery guarantees") -----------------

    def check_layer(self) -> None:
        """One probe through the channel layer, in a task of its own, so a layer that
        hangs never delays the sweep; at most one at a time."""
        if self.layer is not None and (self.layer_check is None or self.layer_check.done()):
            self.layer_check = asyncio.ensure_future(self.layer.check())

    async def resync_all(self) -> None:
        """The layer delivers again after it may have dropped events: every socket is
        told to fetch what it missed (``resync``)."""
        frame = events.envelope(events.RESYNC, {})
        for socket in list(self.sockets):
            await self._guarded(socket.send_json(frame))

    async def close_all_restarting(self) -> None:
        """The layer stayed down too long: close every socket with 1012 (reconnect)."""
        await asyncio.gather(
            *(self._guarded(s.close_with(CLOSE_SERVICE_RESTART)) for s in list(self.sockets))
        )


class BaseChatConsumer(AsyncJsonWebsocketConsumer):
    """Authentication, heartbeats, presence, flood control and the frame loop."""

    side: Side = Side.USER
    route: str = "base"  # the ``route`` field of the log lines (docs/operations.md)
    # Frame type -> handler method name; subclasses extend.
    handlers: dict[str, str] = {"heartbeat": "on_heartbeat"}

    # Per-socket state lives in slots, not in the instance __dict__ (which keeps only what
    # Channels sets): CPython turns an instance's attributes into a full dict of its own
    # (about 1 KB) once a class's instances have set too many different ones, or set a new
    # one late (frame_times, on the first frame). docs/operations.md, "Memory per socket".
    __slots__ = (
        "accepted_at",
        "auth_session_key",
        "busy_since",
        "client_waited_at",
        "close_logged",
        "conversation",
        "conversation_customer_id",
        "conversation_db",
        "conversation_id",
        "counted_open",
        "counterpart_online",
        "flood_logged",
        "frame_times",
        "frames_in",
        "frames_out",
        "joined",
        "last_seen",
        "present",
        "ready",
        "session_fingerprint",
        "throttle_logged_at",
        "throttled_since_log",
        "typing_sent_at",
        "typing_task",
        "user",
    )
    user: Any
    session_fingerprint: str | None
    # The session this socket lives on (cookie, or the session a token came from); never
    # sent anywhere, only re-checked by the watchdog. None: a token issued without one.
    auth_session_key: str | None
    # The row as loaded by authorize(), until hello() has sent it; then only its id, its
    # customer and the database it came from: an instance per idle socket costs ~0.4 KB.
    conversation: Conversation | None
    conversation_id: int | None
    conversation_customer_id: Any
    conversation_db: str | None
    last_seen: float
    busy_since: float | None  # set while a message is being handled
    # When a send to this client last had to wait for it (a full buffer): events published
    # before then may have waited behind that client, not behind this worker.
    client_waited_at: float
    ready: bool  # the watchdog judges silence only once connect() is done
    joined: bool  # the groups are groups_to_join(): not kept per socket
    present: bool
    counted_open: bool  # in support_chat_ws_open_sockets (until log_close or leave)
    counterpart_online: bool | None
    # Times of the frames of the last FLOOD_WINDOW; an empty tuple until the first frame.
    frame_times: Sequence[float]
    typing_sent_at: float
    typing_task: asyncio.Task[None] | None
    # For the log lines: plain numbers, counted per frame; nothing else per frame.
    frames_in: int
    frames_out: int
    accepted_at: float | None  # set on accept; None: refused, or not yet
    close_logged: bool
    flood_logged: bool
    throttle_logged_at: float | None
    throttled_since_log: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = self.session_fingerprint = self.auth_session_key = None
        self.conversation = self.conversation_id = self.conversation_customer_id = None
        self.conversation_db = None
        self.last_seen = self.typing_sent_at = self.client_waited_at = 0.0
        self.busy_since = self.counterpart_online = self.typing_task = None
        self.ready = self.joined = self.present = self.counted_open = False
        self.frame_times = ()
        self.frames_in = self.frames_out = self.throttled_since_log = 0
        self.accepted_at = self.throttle_logged_at = None
        self.close_logged = self.flood_logged = False

    async def connect(self) -> None:
        sendqueue.loop_lag.start()  # pushback reads how late this loop runs
        self.last_seen = time.monotonic()  # restarted when connect() is done
        self.user, self.session_fingerprint = await self._authenticate()
        if self.user is None:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        refusal = await self.authorize()
        if refusal:
            await self.refuse(refusal)
            return
        if await self._too_many_sockets():
            await self.refuse(CLOSE_TOO_MANY_SOCKETS)
            return
        await self.accept()
        self.accepted_at = time.monotonic()
        metrics.CONNECTS.labels(route=self.route).inc()
        metrics.OPEN_SOCKETS.labels(route=self.route).inc()
        self.counted_open = True
        self.joined = True
        for group in self.groups_to_join():
            await self.channel_layer.group_add(group, self.channel_name)
        self.present = True
        store = get_presence_store()
        is_staff = self.side == Side.STAFF
        try:
            first = await store.connect(self.user.pk, self.channel_name, is_staff)
        except Exception:
            # The presence store (its own Redis) is away: the socket works without
            # presence; the watchdog's next refresh that reaches the store adds the entry
            # and announces the user online (as for an entry that expired).
            logger.warning(
                "Presence store unavailable: user %s connects without presence",
                self.user.pk,
                exc_info=True,
            )
            first = False
        if first:
            await self.broadcast_presence(online=True)
        await self.send_json(await self.hello())
        # The silence clock starts now, not when the handshake arrived: under a connect
        # storm the steps above can take longer than two heartbeat intervals.
        self.last_seen = time.monotonic()
        self.ready = True
        Watchdog.for_running_loop().add(self)
        conversation_id = self.conversation_id
        logger.info(
            "ws.connect route=%s user=%s conversation=%s",
            self.route,
            self.user.pk,
            conversation_id,
            extra={
                "event": "ws.connect",
                "route": self.route,
                "user_id": self.user.pk,
                "conversation_id": conversation_id,
            },
        )
        # Authenticated: what the middleware put in the scope for that is not read again
        # (self.user is the user from now on, refreshed by the watchdog), and the scope is
        # this socket's own copy (realtime/stack.py). About 1 KB per idle socket.
        for key in ("session", "cookies", "user"):
            self.scope.pop(key, None)

    def silent_since(self, limit: float, now: float) -> bool:
        """Whether the client sent nothing since ``limit`` (monotonic), as far as this
        socket can tell. A socket still connecting, or busy with a message (frames wait in
        the server's queue behind it and are not seen yet), is not judged, unless one
        message has held it for more than three intervals."""
        if not self.ready:
            return False
        busy_since = self.busy_since
        if busy_since is not None and now - busy_since < 3 * chat_settings.HEARTBEAT_INTERVAL:
            return False
        return self.last_seen < limit

    def uncount_open(self) -> None:
        if self.counted_open:
            self.counted_open = False
            metrics.OPEN_SOCKETS.labels(route=self.route).dec()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first runs close_old_connections through sync_to_async: a hop
        # onto the worker's one database thread for every frame and every group event,
        # queued behind the sends. Every database call here goes through
        # database_sync_to_async, which closes stale connections around itself. The
        # yield stays: without it, channels-redis' list layer (RedisChannelLayer) lost
        # group messages between two workers (tests/realtime/test_sharded_redis.py).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        self.busy_since = time.monotonic()
        try:
            await asyncio.sleep(0)
            await handler(message)
        finally:
            self.busy_since = None

    async def _too_many_sockets(self) -> bool:
        """Whether the user already has ``WS_MAX_SOCKETS_PER_USER`` live sockets, counted
        by the presence store on every worker. A store that fails does not refuse."""
        try:
            count = await get_presence_store().connection_count(self.user.pk)
        except Exception:
            logger.warning("Could not count the sockets of user %s", self.user.pk, exc_info=True)
            return False
        return count >= chat_settings.WS_MAX_SOCKETS_PER_USER

    async def refuse(self, code: int) -> None:
        """Accept, then close with ``code``: closing before accepting would reach the
        client as a bare HTTP 403 (close code 1006), hiding why it was refused."""
        user_id = self.user.pk if self.user is not None else None
        reason = REFUSAL_REASONS.get(code, "refused")
        metrics.REFUSED.labels(route=self.route, code=metrics.close_code(code)).inc()
        logger.warning(
            "ws.refused reason=%s code=%s route=%s user=%s",
            reason,
            code,
            self.route,
            user_id,
            extra={
                "event": "ws.refused",
                "reason": reason,
                "code": code,
                "route": self.route,
                "user_id": user_id,
            },
        )
        await self.accept()
        await self.close(code=code)

    def log_close(self, code: int | None) -> None:
        """One ``ws.close`` line per accepted socket: on the server's close (its code) or
        on the client's disconnect (the client's code), whichever comes first."""
        if self.accepted_at is None or self.close_logged:
            return
        self.close_logged = True
        metrics.CLOSES.labels(route=self.route, code=metrics.close_code(code)).inc()
        self.uncount_open()
        user_id = self.user.pk if self.user is not None else None
        duration = round(time.monotonic() - self.accepted_at, 3)
        logger.info(
            "ws.close code=%s user=%s route=%s duration=%.1fs frames_in=%s frames_out=%s",
            code,
            user_id,
            self.route,
            duration,
            self.frames_in,
            self.frames_out,
            extra={
                "event": "ws.close",
                "code": code,
                "user_id": user_id,
                "route": self.route,
                "duration": duration,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
            },
        )

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.log_close(1000 if code is None or code is True else int(code))
        await super().close(code=code, reason=reason)

    def note_throttled(self, scope: str | None) -> None:
        """A frame of this socket was throttled: a ``ws.throttled`` line at most once per
        ``THROTTLE_LOG_WINDOW``, counting the throttled frames since the previous one."""
        self.throttled_since_log += 1
        metrics.THROTTLED.labels(interface="ws", scope=scope or "none").inc()
        now = time.monotonic()
        last = self.throttle_logged_at
        if last is not None and now - last < THROTTLE_LOG_WINDOW:
            return
        count, self.throttled_since_log, self.throttle_logged_at = self.throttled_since_log, 0, now
        logger.warning(
            "ws.throttled scope=%s user=%s route=%s frames=%s",
            scope,
            self.user.pk,
            self.route,
            count,
            extra={
                "event": "ws.throttled",
                "scope": scope,
                "user_id": self.user.pk,
                "route": self.route,
                "frames": count,
            },
        )

    async def _authenticate(self) -> tuple[Any, str | None]:
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is not None and user.is_authenticated and user.is_active:
            self.auth_session_key = getattr(session, "session_key", None)
            return user, tokens.session_fingerprint(self.auth_session_key)
        token = parse_qs(self.scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            result = await database_sync_to_async(tokens.read_token_session)(token)
            if result is not None:
                user, fingerprint, self.auth_session_key = result
                return user, fingerprint
        return None, None

    async def authorize(self) -> int | None:
        """Return a close code to refuse the connection, or None to accept it."""
        return None

    def groups_to_join(self) -> list[str]:
        return [events.user_group(self.user.pk)]

    async def hello(self) -> dict[str, Any]:
        return events.envelope(
            "hello",
            {
                "user_id": self.user.pk,
                "side": self.side.value,
                "heartbeat_interval": chat_settings.HEARTBEAT_INTERVAL,
                "typing_timeout": chat_settings.TYPING_TIMEOUT,
                "max_message_length": chat_settings.MAX_MESSAGE_LENGTH,
            },
        )

    async def disconnect(self, code: int) -> None:
        if getattr(self, "accepted_at", None) is not None:  # connect() may not have run
            self.log_close(code)
        await self.leave()

    async def leave(self) -> None:
        """Leave presence and groups. Runs on disconnect and before any server-side close,
        so a socket closed by the server stops counting at once. Each step is guarded: a
        layer hiccup must not keep a user online (their entry would expire anyway)."""
        self.uncount_open()
        Watchdog.for_running_loop().discard(self)
        if self.typing_task is not None and self.typing_task is not asyncio.current_task():
            self.typing_task.cancel()
        steps = []
        if getattr(self, "present", False):
            self.present = False
            steps.append(self._leave_presence())
        if self.typing_task is not None and self.conversation_id is not None:
            self.typing_task = None
            steps.append(self._relay_typing(events.TYPING_STOP))
        groups = self.groups_to_join() if getattr(self, "joined", False) else []
        self.joined = False
        steps.extend(self.channel_layer.group_discard(g, self.channel_name) for g in groups)
        for step in steps:
            try:
                await step
            except Exception:
                logger.exception("Cleanup of socket %s failed", self.channel_name)

    async def _leave_presence(self) -> None:
        store = get_presence_store()
        if await store.disconnect(self.user.pk, self.channel_name, self.side == Side.STAFF):
            await self.broadcast_presence(online=False)

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
            self.frames_out += 1
        except Exception as exc:
            # The client left while an event was on its way: uvicorn raises here and then
            # never delivers websocket.disconnect, so clean up now or presence lingers.
            logger.debug("Send to %s failed (%s); closing", self.channel_name, exc)
            await self.leave()
            raise StopConsumer from exc

    async def send_json(self, content: Any, close: bool = False) -> None:
        # Channels' send_json goes to the base class's send, past the override above.
        await super().send_json(content, close=close)
        self.frames_out += 1

    async def close_with(self, code: int) -> None:
        await self.leave()
        await self.close(code=code)

    # -- presence -------------------------------------------------------------------

    async def broadcast_presence(self, online: bool) -> None:
        """Tell whoever watches this user that they came online or went offline."""
        data = {"user_id": self.user.pk, "online": online, "side": self.side.value}
        groups = [events.STAFF_GROUP]
        if self.conversation_id is not None:
            groups.append(events.conversation_group(self.conversation_id))
        if self.side == Side.STAFF:
            data["support_online"] = online or await get_presence_store().staff_online()
            groups.append(CUSTOMERS_GROUP)
        message = events.group_message(
            events.envelope(events.PRESENCE_UPDATE, data), origin=self.channel_name
        )
        # Read by staff lobbies, which re-check the users they were told are online.
        message["presence"] = [self.user.pk, online, self.side.value]
        for group in groups:
            await self.channel_layer.group_send(group, message)

    async def counterpart_presence(self) -> dict[str, Any] | None:
        return None

    @classmethod
    async def counterpart_presences(
        cls, sockets: list[BaseChatConsumer]
    ) -> list[dict[str, Any] | None]:
        """``counterpart_presence`` of many sockets of this class (subclasses batch it)."""
        return [await socket.counterpart_presence() for socket in sockets]

    async def show_counterpart(self, update: dict[str, Any] | None) -> None:
        if update is not None and update["online"] != self.counterpart_online:
            self.counterpart_online = update["online"]
            await self.send_json(events.envelope(events.PRESENCE_UPDATE, update))

    # -- inbound frames -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.last_seen = time.monotonic()
        self.frames_in += 1
        if self._flooding():
            if not self.flood_logged:  # frames queued behind the close come here too
                self.flood_logged = True
                metrics.THROTTLED.labels(interface="ws", scope="flood").inc()
                logger.warning(
                    "ws.flood user=%s route=%s limit=%s window=%ss",
                    self.user.pk,
                    self.route,
                    chat_settings.WS_FLOOD_LIMIT,
                    FLOOD_WINDOW,
                    extra={
                        "event": "ws.flood",
                        "user_id": self.user.pk,
                        "route": self.route,
                        "limit": chat_settings.WS_FLOOD_LIMIT,
                    },
                )
            await self.send_error("flooding", _("Too many frames; the connection is closed."))
            await self.close_with(CLOSE_FLOODING)
            return
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        ref = kind = None
        try:
            if len(raw.encode("utf-8")) > chat_settings.WS_MAX_FRAME_BYTES:
                raise FrameError(
                    "frame_too_large",
                    _("Frame larger than %(limit)d bytes.")
                    % {"limit": chat_settings.WS_MAX_FRAME_BYTES},
                )
            try:
                frame = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                raise FrameError("invalid_json", _("Frames must be JSON objects.")) from None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise FrameError("invalid_frame", _('Frames need a string "type".'))
            ref, kind = frame.get("ref"), frame["type"][:40]
            data = frame.get("data", {})
            if not isinstance(data, dict):
                raise FrameError("invalid_frame", _('"data" must be an object.'))
            handler = self.handlers.get(frame["type"])
            if handler is None:
                raise FrameError(
                    "unknown_type", _("Unknown frame type %(type)r.") % {"type": frame["type"][:40]}
                )
            await getattr(self, handler)(data, ref)
        except FrameError as exc:
            if exc.code == "throttled":
                self.note_throttled(exc.scope)
            await self.send_error(exc.code, exc.message, ref=ref, fields=exc.fields, **exc.extra)
        except ObjectDoesNotExist:
            # The conversation was deleted (Django admin) while this socket was open.
            await self.send_error("not_found", _("This conversation no longer exists."), ref=ref)
            await self.close_with(CLOSE_NOT_FOUND)
        except StopConsumer:
            raise
        except OperationalError:
            # No database connection (pool timeout, "too many clients", the server gone):
            # not a bug of this frame. The client tries again after retry_after.
            sendqueue.note_rejected("ws", sendqueue.UNAVAILABLE, route=self.route)
            await self.send_error(
                sendqueue.UNAVAILABLE,
                _("The service is unavailable; try again shortly."),
                ref=ref,
                retry_after=sendqueue.retry_after(),
            )
        except OSError:
            # The client went away while this frame was answered (uvicorn's
            # ClientDisconnected): nobody is left to tell, and it is not a server fault.
            logger.debug("Client gone during a %r frame", kind, exc_info=True)
        except Exception:
            # A bug must not drop the socket without a word: log it, answer the frame.
            logger.exception("A %r frame failed", kind)
            await self.send_error(
                "server_error", _("The server could not handle this frame."), ref=ref
            )

    def _flooding(self) -> bool:
        now = time.monotonic()
        times = [t for t in self.frame_times if now - t < FLOOD_WINDOW]
        times.append(now)
        self.frame_times = times
        return len(times) > chat_settings.WS_FLOOD_LIMIT

    async def send_error(
        self,
        code: str,
        message: str,
        ref: Any = None,
        fields: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        data: dict[str, Any] = {"code": code, "message": message, **extra}
        if fields:
            data["fields"] = fields
        frame = events.envelope(events.ERROR, data)
        if ref is not None:
            frame["ref"] = ref
        await self.send_json(frame)

    async def reply(self, event_type: str, data: dict[str, Any], ref: Any) -> None:
        frame = events.envelope(event_type, data)
        if ref is not None:
            frame["ref"] = ref
        await self.send_json(frame)

    async def on_heartbeat(self, data: dict[str, Any], ref: Any) -> None:
        # Any frame moved last_seen (see receive); the watchdog renews presence in bulk.
        await self.reply("heartbeat", {}, ref)

    # -- outbound group events --------------------------------------------------------

    async def chat_event(self, message: dict[str, Any]) -> None:
        if message.get("origin") == self.channel_name:
            return  # never echo a socket's own typing / presence back to it
        started = time.monotonic()
        if "text" in message:
            await self.send(text_data=message["text"])  # serialised once, by the publisher
        else:
            await self.send_json(message["event"])
        if time.monotonic() - started > CLIENT_WAIT:
            self.client_waited_at = time.time()  # the client's buffer was full
        published = message.get("published")
        metrics.observe_delivery(self.route, published)
        # Pushback reads how late this worker's own events go out, unless this socket
        # waited for its client meanwhile: one slow client must not refuse everyone's sends.
        if (
            message.get("worker") == events.WORKER_ID
            and isinstance(published, float)
            and published > self.client_waited_at
        ):
            sendqueue.delivery_lag.observe(time.time() - published)

    async def chat_session_ended(self, message: dict[str, Any]) -> None:
        ended = message.get("session")
        if self.session_fingerprint is None or ended is None or ended == self.session_fingerprint:
            await self.close_with(CLOSE_LOGGED_OUT)


class ConversationConsumerMixin(BaseChatConsumer):
    """Frames inside one conversation: send, typing, delivered, read, sync."""

    handlers = {
        **BaseChatConsumer.handlers,
        "message:send": "on_send",
        "typing:start": "on_typing_start",
        "typing:stop": "on_typing_stop",
        "message:delivered": "on_delivered",
        "message:read": "on_read",
        "sync": "on_sync",
    }

    async def load_conversation(self) -> Conversation | None:
        pk = self.scope["url_route"]["kwargs"]["conversation_id"]
        return await database_sync_to_async(
            lambda: (
                Conversation.objects.select_related("customer", "assigned_to", "last_message")
                .filter(pk=pk)
                .first()
            )
        )()

    def groups_to_join(self) -> list[str]:
        assert self.conversation_id is not None
        return [*super().groups_to_join(), events.conversation_group(self.conversation_id)]

    async def hello(self) -> dict[str, Any]:
        frame = await super().hello()
        assert self.conversation is not None
        conversation = self.conversation
        frame["data"]["conversation"] = await database_sync_to_async(conversation_data)(
            conversation, self.side
        )
        frame["data"]["last_message_id"] = conversation.last_message_id or 0
        # For the socket's lifetime keep only what the loop reads (the id and the customer),
        # not the row, customer, assignee and last message loaded for hello: about 3 KB per
        # idle socket (slim_conversation() makes an instance when a frame needs one).
        self.conversation = None
        presence = await self.counterpart_presence()
        if presence is not None:
            self.counterpart_online = presence["online"]
            frame["data"]["presence"] = presence
        return frame

    def hold(self, conversation: Conversation) -> None:
        """Keep the conversation authorize() loaded (for hello), and its id and customer
        for the socket's lifetime."""
        self.conversation = conversation
        self.conversation_id, self.conversation_db = conversation.pk, conversation._state.db
        self.conversation_customer_id = conversation.customer_id

    def slim_conversation(self) -> Conversation:
        """A new instance with the id and the customer only (the others deferred), for a
        service: it locks and re-reads the row and refreshes the instance it is given."""
        assert self.conversation_id is not None
        return Conversation.from_db(
            self.conversation_db,
            ["id", "customer_id"],
            [self.conversation_id, self.conversation_customer_id],
        )

    async def on_send(self, data: dict[str, Any], ref: Any) -> None:
        conversation = self.slim_conversation()
        # Pushback: with SEND_QUEUE_LIMIT sends of this worker waiting for the database,
        # this one is refused at once rather than queued (docs/protocol.md).
        try:
            slot = sendqueue.gate.acquire("ws", client_id=lambda: data.get("client_id"))
        except sendqueue.Overloaded as exc:
            raise FrameError(
                sendqueue.OVERLOADED,
                _("The server is busy; try again shortly."),
                retry_after=exc.retry_after,
            ) from None

        def send() -> tuple[dict[str, Any] | None, bool, float | None]:
            try:
                # Same budget as the REST endpoint: one throttle, one cache key per user.
                wait = ratelimits.check(self.user, ratelimits.SEND_SCOPE)
                if wait is not None:
                    return None, False, wait
                message, created = services.send_message(
                    conversation, self.user, data.get("text"), data.get("client_id")
                )
                return message_data(message, conversation), created, None
            finally:
                # Here, on the database thread: a socket that goes away meanwhile cancels
                # this frame, not the (shielded) database call, which still holds its slot.
                slot.release()

        cancelled = False
        try:
            payload, created, wait = await events.call_and_publish(send, lane=conversation.pk)
        except asyncio.CancelledError:
            cancelled = True  # the call may still run: send() releases the slot
            raise
        except ValidationError as exc:
            fields = exc.message_dict if hasattr(exc, "error_dict") else {"text": exc.messages}
            raise FrameError("invalid", _("The message was not stored."), fields) from None
        except ChatError as exc:
            raise FrameError(exc.code, exc.message) from None
        finally:
            if not cancelled:  # the call has ended (also if it never started)
                slot.release()
        if payload is None:
            self.note_throttled(ratelimits.SEND_SCOPE)
            await self.send_error(
                "throttled",
                _("Too many messages; try again shortly."),
                ref=ref,
                retry_after=round(wait or 1, 1),
            )
            return
        if self.typing_task is not None:
            self.typing_task.cancel()
            self.typing_task = None
            self.typing_sent_at = 0.0  # so the next keystroke relays typing:start at once
            await self._relay_typing(events.TYPING_STOP)
        await self.reply("message:sent", {"message": payload, "created": created}, ref)

    async def _relay_typing(self, event_type: str) -> None:
        assert self.conversation_id is not None
        event = events.envelope(
            event_type,
            {
                "conversation_id": self.conversation_id,
                "user_id": self.user.pk,
                "side": self.side.value,
            },
        )
        # Best effort, like every event: a layer that is down must not fail the frame (a
        # message:send whose answer would be lost with it).
        await events.send_to_groups(
            [events.conversation_group(self.conversation_id)],
            events.group_message(event, origin=self.channel_name),
        )

    async def on_typing_start(self, data: dict[str, Any], ref: Any) -> None:
        now = time.monotonic()
        if self.typing_task is not None:
            self.typing_task.cancel()
        self.typing_task = asyncio.ensure_future(self._typing_timeout())
        # Rate-limited relay: refreshes within 1/TYPING_RATE s only extend the timer.
        if now - self.typing_sent_at >= 1 / chat_settings.TYPING_RATE:
            self.typing_sent_at = now
            await self._relay_typing(events.TYPING_START)

    async def _typing_timeout(self) -> None:
        try:
            await asyncio.sleep(chat_settings.TYPING_TIMEOUT)
        except asyncio.CancelledError:
            return
        self.typing_task = None
        self.typing_sent_at = 0.0
        await self._relay_typing(events.TYPING_STOP)

    async def on_typing_stop(self, data: dict[str, Any], ref: Any) -> None:
        if self.typing_task is not None:
            self.typing_task.cancel()
            self.typing_task = None
            self.typing_sent_at = 0.0
            await self._relay_typing(events.TYPING_STOP)

    async def _conversation_call(self, func: Any, *args: Any, scope: str | None = None) -> None:
        conversation = self.slim_conversation()
        user = self.user

        def call() -> Any:
            if scope is not None:
                _throttle(user, scope)
            return func(conversation, user, *args)

        try:
            await events.call_and_publish(call, lane=conversation.pk)
        except ChatError as exc:
            raise FrameError(exc.code, exc.message) from None

    async def on_delivered(self, data: dict[str, Any], ref: Any) -> None:
        up_to_id = _int_field(data, "up_to_id")
        await self._conversation_call(
            services.mark_delivered, up_to_id, scope=ratelimits.READ_SCOPE
        )

    async def on_read(self, data: dict[str, Any], ref: Any) -> None:
        up_to_id = _int_field(data, "up_to_id", False)
        await self._conversation_call(services.mark_read, up_to_id, scope=ratelimits.READ_SCOPE)

    async def on_sync(self, data: dict[str, Any], ref: Any) -> None:
        """Everything after ``after_seq`` (or the older ``after_id``), oldest first, one
        page, and the current state (with ``last_seq``)."""
        by_seq = "after_seq" in data
        field = "seq" if by_seq else "id"
        after = _int_field(data, "after_seq" if by_seq else "after_id")
        assert self.conversation_id is not None
        pk, side, size = self.conversation_id, self.side, chat_settings.HISTORY_PAGE_SIZE

        user = self.user

        def load() -> dict[str, Any]:
            _throttle(user, ratelimits.SYNC_SCOPE)
            conversation = Conversation.objects.select_related(
                "customer", "assigned_to", "last_message"
            ).get(pk=pk)
            rows = list(
                Message.objects.filter(conversation=conversation, **{f"{field}__gt": after})
                .select_related("sender")
                .order_by(field)[: size + 1]
            )
            return {
                "conversation": conversation_data(conversation, side),
                "messages": [message_data(m, conversation) for m in rows[:size]],
                "has_more": len(rows) > size,
            }

        await self.reply("sync", await dbthreads.run(pk, load), ref)


class CustomerConsumer(ConversationConsumerMixin):
    """``ws/chat/user/<conversation_id>/``: a customer inside their own conversation."""

    side = Side.USER
    route = "customer"

    async def authorize(self) -> int | None:
        conversation = await self.load_conversation()
        if conversation is None or conversation.customer_id != self.user.pk:
            return CLOSE_NOT_FOUND
        self.hold(conversation)
        return None

    def groups_to_join(self) -> list[str]:
        return [*super().groups_to_join(), CUSTOMERS_GROUP]

    async def counterpart_presence(self) -> dict[str, Any] | None:
        online = await get_presence_store().staff_online()
        return {"support_online": online, "online": online, "side": Side.STAFF.value}

    @classmethod
    async def counterpart_presences(
        cls, sockets: list[BaseChatConsumer]
    ) -> list[dict[str, Any] | None]:
        online = await get_presence_store().staff_online()  # one question for every socket
        update = {"support_online": online, "online": online, "side": Side.STAFF.value}
        return [dict(update) for _ in sockets]


class StaffConversationConsumer(ConversationConsumerMixin):
    """``ws/chat/admin/<conversation_id>/``: staff inside one conversation."""

    side = Side.STAFF
    route = "staff_conversation"

    async def authorize(self) -> int | None:
        if not await database_sync_to_async(roles.is_staff)(self.user):
            return CLOSE_FORBIDDEN
        conversation = await self.load_conversation()
        if conversation is None:
            return CLOSE_NOT_FOUND
        self.hold(conversation)
        return None

    async def counterpart_presence(self) -> dict[str, Any] | None:
        customer_id = self.conversation_customer_id
        online = await get_presence_store().is_online(customer_id)
        return {"user_id": customer_id, "online": online, "side": Side.USER.value}

    @classmethod
    async def counterpart_presences(
        cls, sockets: list[BaseChatConsumer]
    ) -> list[dict[str, Any] | None]:
        ids = [socket.conversation_customer_id for socket in sockets]
        online = await get_presence_store().online(sorted(set(ids)))
        return [{"user_id": pk, "online": pk in online, "side": Side.USER.value} for pk in ids]


class StaffLobbyConsumer(BaseChatConsumer):
    """``ws/chat/admin/``: every inbox change, for staff."""

    side = Side.STAFF
    route = "staff_lobby"
    handlers = {**BaseChatConsumer.handlers, "presence:query": "on_presence_query"}

    async def authorize(self) -> int | None:
        if not await database_sync_to_async(roles.is_staff)(self.user):
            return CLOSE_FORBIDDEN
        return None

    def groups_to_join(self) -> list[str]:
        return [*super().groups_to_join(), events.STAFF_GROUP]

    # -- presence of the users this lobby shows ---------------------------------------
    # The lobby is told when a user comes online or goes offline by the worker holding
    # that user's socket. If that worker dies, nobody tells it: so it remembers whom it
    # was told (or answered with ``presence:state``) to be online, and the watchdog
    # re-checks them every interval and sends ``presence:update`` offline for those whose
    # entries expired.

    async def connect(self) -> None:
        self.shown_online: dict[int, tuple[str, float]] = {}  # user_id -> (side, since)
        self.announced_offline: dict[int, float] = {}  # by the watchdog, not an event
        await super().connect()

    async def chat_event(self, message: dict[str, Any]) -> None:
        seen = message.get("presence")
        if seen is not None and message.get("origin") != self.channel_name:
            user_id, online, side = seen
            if online:
                self.shown_online[user_id] = (side, time.monotonic())
                self.announced_offline.pop(user_id, None)
            else:
                self.shown_online.pop(user_id, None)
                if self.announced_offline.pop(user_id, None) is not None:
                    return  # the watchdog already said so
        await super().chat_event(message)

    @classmethod
    async def counterpart_presences(
        cls, sockets: list[BaseChatConsumer]
    ) -> list[dict[str, Any] | None]:
        checked_at = time.monotonic()
        shown = {uid for s in sockets for uid in getattr(s, "shown_online", {})}
        if not shown:
            return [None for _ in sockets]
        store = get_presence_store()
        gone = shown - await store.online(sorted(shown))
        if not gone:
            return [None for _ in sockets]
        support = await store.staff_online()
        return [{"gone": gone, "checked_at": checked_at, "support_online": support}] * len(sockets)

    async def show_counterpart(self, update: dict[str, Any] | None) -> None:
        now = time.monotonic()
        for user_id, at in list(self.announced_offline.items()):
            if now - at > chat_settings.PRESENCE_TTL:  # no event is coming any more
                del self.announced_offline[user_id]
        if update is None:
            return
        for user_id in sorted(update["gone"] & self.shown_online.keys()):
            side, since = self.shown_online[user_id]
            if since > update["checked_at"]:
                continue  # came online again while the store was asked
            del self.shown_online[user_id]
            self.announced_offline[user_id] = now
            data: dict[str, Any] = {"user_id": user_id, "online": False, "side": side}
            if side == Side.STAFF.value:
                data["support_online"] = update["support_online"]
            await self.send_json(events.envelope(events.PRESENCE_UPDATE, data))

    async def on_presence_query(self, data: dict[str, Any], ref: Any) -> None:
        """``{"user_ids": [...]}`` -> which of these users are online (at most 500)."""
        ids = data.get("user_ids")
        if (
            not isinstance(ids, list)
            or len(ids) > 500
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            raise FrameError("invalid", _("user_ids must be a list of at most 500 integers."))
        await database_sync_to_async(_throttle)(self.user, ratelimits.PRESENCE_SCOPE)
        try:
            online = await get_presence_store().online(ids)
        except Exception:  # Redis away: a clear answer, not a server error
            logger.warning("Presence store unavailable for presence:query", exc_info=True)
            raise FrameError(
                sendqueue.UNAVAILABLE,
                _("Presence is unavailable right now; try again shortly."),
                retry_after=sendqueue.retry_after(),
            ) from None
        now = time.monotonic()
        for user_id in online:  # watched from now on, like those announced online
            side = self.shown_online.get(user_id, (Side.USER.value, now))[0]
            self.shown_online[user_id] = (side, now)
        await self.reply("presence:state", {"online": sorted(online)}, ref)
