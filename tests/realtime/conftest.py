"""Fixtures for the realtime tests: real channel layers (in-memory and Redis) and sockets
that go through the example project's full ASGI stack (origin check, session auth)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from django_support_chat import dbthreads, presence

REDIS_URL_ENV = "REDIS_URL_TEST"


def redis_url() -> str:
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.fail(
            f"{REDIS_URL_ENV} is not set: the Redis tests need a running redis-server "
            "(bash scripts/test.sh starts one)."
        )
    return url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def layer(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """Run the test on the in-memory layer and on channels-redis against a real Redis."""
    settings.SUPPORT_CHAT = {
        "HEARTBEAT_INTERVAL": 10,
        "PRESENCE_TTL": 30,
        "PRESENCE_KEY_PREFIX": f"test{os.getpid()}:presence",
    }
    if request.param == "redis":
        url = redis_url()
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                # Own prefixes: Redis pub/sub ignores the db number, so concurrent runs
                # against one server would otherwise hear each other.
                "CONFIG": {
                    "hosts": [{"address": url, "max_connections": 500}],
                    "prefix": f"test{os.getpid()}",
                },
            }
        }
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    presence._store = None
    yield request.param
    channel_layers.backends.clear()
    presence._store = None
    dbthreads.close_connections()


@pytest.fixture
def chat_settings(settings: Any, layer: str) -> Any:
    """Override SUPPORT_CHAT keys on top of the layer fixture's: ``chat_settings(KEY=v)``."""

    def apply(**values: Any) -> None:
        settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, **values}

    return apply


def make_user(username: str, **flags: Any) -> Any:
    return get_user_model().objects.create_user(username=username, password="pw", **flags)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


class Socket:
    """A WebsocketCommunicator with JSON helpers that skip frames a test doesn't wait for."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator
        self.pending: list[dict[str, Any]] = []  # frames read while connecting

    async def send(self, type_: str, data: dict[str, Any] | None = None, **extra: Any) -> None:
        await self.comm.send_json_to({"type": type_, "data": data or {}, **extra})

    async def receive(self, timeout: float = 3) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        return await self.comm.receive_json_from(timeout=timeout)

    async def expect(self, type_: str, timeout: float = 3, where: Any = None) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``where(frame)`` if given), skipping others;
        fails after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = []
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                pytest.fail(f"no {type_!r} frame within {timeout}s; saw {seen}")
            try:
                frame = await self.receive(timeout=remaining)
            except asyncio.TimeoutError:
                pytest.fail(f"no {type_!r} frame within {timeout}s; saw {seen}")
            if frame.get("type") == type_ and (where is None or where(frame)):
                return frame
            seen.append(frame.get("type"))

    async def nothing(self, timeout: float = 0.3) -> bool:
        return not self.pending and await self.comm.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.comm.disconnect()


async def open_socket(
    path: str,
    user: Any = None,
    origin: bytes = b"http://localhost",
    query: str = "",
    wrap: Any = None,
) -> tuple[bool, Any, Socket]:
    """``wrap``: a function of the ASGI application to serve it through (a server that
    behaves differently, for example one whose client reads slowly)."""
    from example.asgi import application

    if wrap is not None:
        application = wrap(application)

    headers = [(b"origin", origin)] if origin else []
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    url = path + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, url, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    socket = Socket(communicator)
    if connected:
        # Refusals are accepted and closed at once with a 44xx code; success says hello.
        first = await communicator.receive_output(timeout=5)
        if first["type"] == "websocket.close":
            return False, first.get("code"), socket
        socket.pending.append(json.loads(first["text"]))
    return connected, code, socket


async def connect(sockets: list[Socket], path: str, user: Any) -> Socket:
    """Open ``path`` as ``user``, add it to ``sockets`` and read its ``hello``."""
    connected, code, socket = await open_socket(path, user)
    assert connected, f"{path} refused with {code}"
    sockets.append(socket)
    await socket.expect("hello")
    return socket


@pytest.fixture
async def sockets() -> AsyncIterator[list[Socket]]:
    """Collects sockets opened by a test and closes them at the end."""
    opened: list[Socket] = []
    yield opened
    for socket in opened:
        with contextlib.suppress(Exception):
            await socket.close()
