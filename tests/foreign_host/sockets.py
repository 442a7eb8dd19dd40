"""WebSocket clients for the foreign host's ``application`` (channels' WebsocketCommunicator,
in-process, the in-memory channel layer)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

ORIGIN = b"http://localhost"


def application() -> Any:
    """The host's ASGI application (imported late: asgi.py follows README step 4)."""
    from tests.foreign_host.asgi import application

    return application


def _session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


class Socket:
    """A communicator that keeps every JSON frame it has read in ``frames``."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.comm = communicator
        self.frames: list[dict[str, Any]] = []
        self.cursor = 0  # frames before it were looked at by expect()
        self.connected = False
        self.close_code: int | None = None

    async def send(self, type_: str, data: dict[str, Any] | None = None, **extra: Any) -> None:
        await self.comm.send_json_to({"v": 1, "type": type_, "data": data or {}, **extra})

    async def expect(self, type_: str, where: Any = None, timeout: float = 5) -> dict[str, Any]:
        """The next frame of ``type_`` (matching ``where``) after the one the last
        ``expect`` returned, reading more frames while needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index in range(self.cursor, len(self.frames)):
                frame = self.frames[index]
                if frame["type"] == type_ and (where is None or where(frame)):
                    self.cursor = index + 1
                    return frame
            if loop.time() > deadline or self.close_code is not None:
                seen = [f["type"] for f in self.frames[self.cursor :]]
                pytest.fail(f"no {type_!r} frame within {timeout}s; saw {seen}")
            await self.read(quiet=0.05)

    async def read(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every frame that arrives until none has for ``quiet`` seconds."""
        new = []
        # receive_nothing never cancels the application (receive_output's timeout would).
        while not await self.comm.receive_nothing(timeout=quiet):
            output = await self.comm.receive_output(timeout=1)
            if output["type"] == "websocket.close":
                self.close_code = output.get("code")
                break
            frame = json.loads(output["text"])
            new.append(frame)
            self.frames.append(frame)
        future = self.comm.future
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise future.exception()  # the application crashed: say how
        return new

    async def close(self) -> None:
        await self.comm.disconnect()


async def connect(
    path: str, user: Any = None, origin: bytes | None = ORIGIN, app: Any = None
) -> Socket:
    """Open ``path``; ``socket.connected`` says whether the chat said hello (or, for a host
    route, whether the handshake was accepted)."""
    headers = [(b"origin", origin)] if origin else []
    if user is not None:
        cookie = await database_sync_to_async(_session_cookie)(user)
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(app or application(), path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    socket = Socket(communicator)
    socket.connected = connected
    if not connected:
        socket.close_code = code
        return socket
    if path.startswith("/ws/chat/"):
        # The chat refuses by accepting and closing with a 44xx code; success says hello.
        first = await communicator.receive_output(timeout=5)
        if first["type"] == "websocket.close":
            socket.connected = False
            socket.close_code = first.get("code")
        else:
            socket.frames.append(json.loads(first["text"]))
    return socket
