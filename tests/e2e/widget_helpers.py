"""Helpers for the widget's browser tests: the staff side over a real WebSocket, the
customer side as the real widget in Chromium, and checks on the server's log."""

from __future__ import annotations

import json
import re
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.test import Client
from websockets.sync.client import connect

from django_support_chat import services
from django_support_chat.models import Conversation, Message

ROOT = Path(__file__).resolve().parents[2]


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


class StaffSocket:
    """Staff inside one conversation (``ws/chat/admin/<id>/``), driven from the test.

    ``wait_for`` keeps the socket alive with heartbeats while it waits, and remembers
    every frame it has read in ``frames``.
    """

    def __init__(self, live_url: str, user: Any, conversation_id: int, pump: Any = None) -> None:
        # ``pump``: a Playwright page whose event loop must keep running while this socket
        # waits (needed when Python callbacks route the page's sockets, see SocketGate).
        self.pump = pump
        ws_url = "ws" + live_url.removeprefix("http") + f"/ws/chat/admin/{conversation_id}/"
        cookie = f"{django_settings.SESSION_COOKIE_NAME}={session_cookie(user)}"
        self._stack = ExitStack()  # connect() as a context manager, as websockets asks
        self.ws = self._stack.enter_context(
            connect(ws_url, additional_headers={"Cookie": cookie}, origin=live_url)
        )
        self.frames: list[dict[str, Any]] = []
        self.last_beat = time.monotonic()
        self.hello = self.wait_for("hello")

    def send(self, frame_type: str, data: dict[str, Any] | None = None, ref: Any = None) -> None:
        frame: dict[str, Any] = {"type": frame_type, "data": data or {}}
        if ref is not None:
            frame["ref"] = ref
        self.ws.send(json.dumps(frame))

    def reply(self, text: str) -> dict[str, Any]:
        """Send a message as staff; return the stored message."""
        client_id = str(uuid.uuid4())
        self.send("message:send", {"text": text, "client_id": client_id}, ref=client_id)
        sent = self.wait_for("message:sent", lambda frame: frame.get("ref") == client_id)
        return sent["data"]["message"]

    def wait_for(self, frame_type: str, match: Any = None, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [frame["type"] for frame in self.frames]
                raise AssertionError(f"no {frame_type!r} frame within {timeout}s; saw {seen}")
            if time.monotonic() - self.last_beat > 4:
                self.send("heartbeat")
                self.last_beat = time.monotonic()
            if self.pump is not None:
                self.pump.wait_for_timeout(20)
            try:
                raw = self.ws.recv(timeout=min(left, 0.05 if self.pump is not None else 1))
            except TimeoutError:
                continue
            frame = json.loads(raw)
            self.frames.append(frame)
            if frame["type"] == frame_type and (match is None or match(frame)):
                return frame

    def close(self) -> None:
        self._stack.close()


class SocketGate:
    """Routes the widget's sockets (``ws/chat/user/...``) of a page or context through
    Playwright, to simulate a server that is unreachable, a connection cut mid-flight, or
    frames lost on the way. While ``open`` is False, new connections are refused."""

    def __init__(self, target: Any) -> None:
        self.open = True
        self.attempts: list[float] = []
        self.live: list[tuple[Any, Any]] = []
        # Predicates on parsed frames: True drops the frame.
        self.drop_from_server: Any = lambda frame: False
        self.drop_from_page: Any = lambda frame: False
        self.from_page: list[dict[str, Any]] = []
        target.route_web_socket(re.compile(r".*/ws/chat/user/\d+/$"), self._route)

    def _route(self, ws: Any) -> None:
        self.attempts.append(time.monotonic())
        if not self.open:
            ws.close(code=4000, reason="gate closed")
            return
        server = ws.connect_to_server()
        self.live.append((ws, server))

        def to_page(message: str | bytes) -> None:
            if not self.drop_from_server(json.loads(message)):
                ws.send(message)

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            self.from_page.append(frame)
            if not self.drop_from_page(frame):
                server.send(message)

        server.on_message(to_page)
        ws.on_message(to_server)

    def cut(self) -> None:
        """Close every routed connection, as a network failure would."""
        for ws, server in self.live:
            ws.close(code=4000, reason="cut")
            server.close()
        self.live.clear()

    def sent(self, frame_type: str) -> list[dict[str, Any]]:
        return [frame for frame in self.from_page if frame.get("type") == frame_type]


def watch_page(page: Any) -> list[str]:
    """Collect the page's JavaScript errors, console errors and failed responses (the
    returned list grows while the page lives)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text} {message.location}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            errors.append(f"HTTP {response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    return errors


def server_log(live_url: str) -> str:
    port = urlsplit(live_url).port
    return (ROOT / f".e2e-server-{port}.log").read_text()


def assert_no_server_errors(live_url: str) -> None:
    log = server_log(live_url)
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-3000:]


@pytest.fixture
def no_server_errors(live_url: str):
    """Use in every widget test module: after the test, the server's log has no 500 and no
    exception (HTTP or WebSocket)."""
    yield
    assert_no_server_errors(live_url)


def open_widget(page: Any) -> None:
    """Click the launcher and wait until the panel is open with focus in the composer."""
    page.locator(".support-chat-launcher").click()
    page.locator(".scw-panel.scw-in").wait_for(state="visible")
    page.wait_for_function("document.activeElement?.classList.contains('scw-input')")
    # Let the fade + slide-up transition finish, so measured boxes are the final ones.
    page.wait_for_function("document.querySelector('.scw-panel').getAnimations().length === 0")


def wait_connected(page: Any, timeout: float = 10_000) -> None:
    """Wait until the panel's socket has received ``hello``."""
    page.locator("#support-chat[data-connection=open]").wait_for(state="attached", timeout=timeout)


def send_from_widget(page: Any, text: str) -> None:
    page.locator(".scw-input").fill(text)
    page.locator(".scw-input").press("Enter")


def customer_conversation(user: Any) -> Conversation:
    conversation = Conversation.objects.filter(customer=user).order_by("-id").first()
    assert conversation is not None
    return conversation


def quiet_send(conversation: Conversation, sender: Any, text: str) -> Message:
    """``services.send_message`` from the test process, for state that needs no liveness.

    Its events would go to this process's channel layer, which no socket listens to (and
    which cannot be reached from inside Playwright's event loop), so they are skipped.
    """
    with mock.patch("django_support_chat.events.publish"):
        message, _ = services.send_message(conversation, sender, text, uuid.uuid4())
    return message


def start_conversation(user: Any, staff: Any, *replies: str) -> Conversation:
    """A conversation with one customer message and ``replies`` from staff (not live)."""
    with mock.patch("django_support_chat.events.publish"):
        conversation, _ = services.get_or_start_conversation(user)
    quiet_send(conversation, user, "I have a question")
    for text in replies:
        quiet_send(conversation, staff, text)
    conversation.refresh_from_db()
    return conversation
