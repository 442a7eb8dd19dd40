"""Graceful deploys (issue #13 item 4): a rolling restart of the two uvicorn workers behind
nginx (the published topology of tests/e2e/test_nginx_topology.py) under live traffic.

A customer (the widget) and a staff member (the inbox, inside the conversation) are open
in two browsers while a sender posts a message over REST every ~100 ms, through nginx, for
the whole test; the staff's conversation socket is put on the other worker than the
customer's. Then worker A (the one holding the customer's socket) gets SIGTERM, the
way systemd stops it (KillSignal=SIGTERM): uvicorn stops accepting, closes its WebSockets
with 1012 and must exit within its ``--timeout-graceful-shutdown`` (plus slack). A is
started again and, once nginx routes to it again, B gets the same.

Every message the sender had acknowledged (201; or 200 for a retry of one stored already,
the API being idempotent on ``client_id``) is stored once and shows in both pages' DOM,
in order, none lost or doubled; each socket of a worker being stopped saw 1012 and
reconnected exactly once (one new socket, one ``hello``), the others not at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from django_support_chat.models import Message
from django_support_chat.presence import RedisPresenceStore

from .inbox_helpers import open_inbox, row, wait_chat_connected
from .test_nginx_topology import (
    INBOX_TEXTS,
    LIVE,
    WIDGET_TEXTS,
    Topology,
    worker_command,
)

# The autouse fixture: only the workers publish (this process runs Playwright's loop).
from .test_redis_outage_browser import (  # noqa: F401
    _no_events_from_the_test_process,
    logged_in_context,
)
from .widget_helpers import customer_conversation, open_widget, send_from_widget, wait_connected

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WINDOW = 120  # panel.js: most messages the widget keeps in the DOM
SLACK = 5  # s beyond --timeout-graceful-shutdown for a worker to exit

# Records every WebSocket's close code (Playwright's WebSocket events carry none).
RECORD_CLOSES = """(() => {
  const Native = window.WebSocket;
  window.__closes = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("close", (e) => window.__closes.push([new URL(this.url).pathname, e.code]));
    }
  };
})();"""


def graceful_timeout() -> int:
    argv = worker_command(0)
    return int(argv[argv.index("--timeout-graceful-shutdown") + 1])


class RestartableTopology(Topology):
    """The topology with workers that can be stopped and started one at a time (the base's
    start_worker appends to the worker's log, so the log spans its restarts)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.workers: dict[int, subprocess.Popen] = {}

    def env(self) -> dict[str, str]:
        return {**super().env(), "DJANGO_SETTINGS_MODULE": "tests.e2e.graceful_settings"}

    def start_worker(self, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
        process = self.workers[port] = super().start_worker(port, env)
        return process

    def sigterm(self, port: int, timeout: float) -> float:
        """SIGTERM the worker and wait for it to exit: the seconds it took."""
        process = self.workers[port]
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=timeout)
        return time.monotonic() - started

    def proxied_health_lines(self, port: int) -> int:
        # Requests nginx passed on carry X-Forwarded-For's client, "127.0.0.1:0".
        return len(re.findall(r'127\.0\.0\.1:0 - "GET /chat/health/live', self.worker_log(port)))

    def wait_in_rotation(self, port: int) -> None:
        """Until nginx sends requests to the worker again: after the connections it had
        refused while stopped, nginx leaves it out for its fail_timeout (10 s by default)."""
        before = self.proxied_health_lines(port)
        deadline = time.monotonic() + 30
        while self.proxied_health_lines(port) == before:
            assert time.monotonic() < deadline, f"nginx never routed to :{port} again"
            urllib.request.urlopen(self.base + "/chat/health/live", timeout=5).read()
            time.sleep(0.1)


@pytest.fixture
def topology(tmp_path: Path):
    topology = RestartableTopology(tmp_path)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


class Sockets:
    """A page's WebSockets as the browser saw them: opens and ``hello`` frames per path
    (Playwright), close codes per path (RECORD_CLOSES)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.all: list[Any] = []
        self.opens: Counter[str] = Counter()
        self.hellos: Counter[str] = Counter()
        self.texts: set[str] = set()  # message texts the page's sockets brought
        page.on("websocket", self._opened)

    def reload(self) -> None:
        """Reload the page; the old document's sockets are gone with it (Playwright may not
        report them closed), so only the new document's count from here on."""
        self.all.clear()
        self.page.reload()

    def _opened(self, ws: Any) -> None:
        path = urlparse(ws.url).path
        self.all.append(ws)
        self.opens[path] += 1

        def received(payload: str | bytes) -> None:
            if not isinstance(payload, str):
                return
            frame = json.loads(payload)
            data = frame.get("data") or {}
            if frame.get("type") == "hello":
                self.hellos[path] += 1
            elif frame.get("type") in ("message:new", "message:sent", "sync"):
                messages = data.get("messages") or [data.get("message") or {}]
                self.texts.update(m["text"] for m in messages if "text" in m)

        ws.on("framereceived", received)

    def live(self) -> Counter[str]:
        return Counter(urlparse(ws.url).path for ws in self.all if not ws.is_closed())

    def closes(self) -> list[tuple[str, int]]:
        return [tuple(c) for c in self.page.evaluate("window.__closes")]

    def snapshot(self) -> dict[str, Any]:
        return {
            "opens": Counter(self.opens),
            "hellos": Counter(self.hellos),
            "closes": len(self.closes()),
            "live": self.live(),
        }


class Sender(threading.Thread):
    """Posts ``live <n>`` to the conversation through nginx every ~100 ms; a failed POST
    (a worker going away under it) is retried with the same client_id until acknowledged."""

    def __init__(self, base: str, conversation_id: int, cookies: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url = f"{base}/api/chat/conversations/{conversation_id}/messages/"
        self.headers = {
            "Content-Type": "application/json",
            "X-CSRFToken": cookies["csrftoken"],
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        }
        self.acked: list[tuple[float, str]] = []
        self.retries: list[str] = []
        self.error: str | None = None
        self.stopping = threading.Event()

    def post(self, text: str, client_id: str) -> int | str:
        body = json.dumps({"text": text, "client_id": client_id}).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError as error:
            return repr(error)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            text, client_id = f"live {n}", str(uuid.uuid4())
            for _ in range(100):
                status = self.post(text, client_id)
                if status in (200, 201):
                    self.acked.append((time.monotonic(), text))
                    break
                self.retries.append(f"{text}: {status}")
                time.sleep(0.1)
            else:
                self.error = f"{text} never acknowledged: {self.retries[-3:]}"
                return
            time.sleep(0.1)

    def texts(self) -> list[str]:
        return [text for _, text in self.acked]


def presence(*users: Any) -> list[int]:
    """Live presence entries (connections) per user, in the Redis the workers share."""
    store = RedisPresenceStore(os.environ["REDIS_URL_TEST"], 2)

    async def counts() -> list[int]:
        try:
            return [await store.connection_count(user.pk) for user in users]
        finally:
            await store.aclose()

    # In a thread of its own: Playwright's loop runs in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, counts()).result()


def wait_reconnected(pages: list[Sockets], before: list[dict[str, Any]]) -> None:
    """Until every socket closed since ``before`` was replaced by one that said hello."""
    deadline = time.monotonic() + 20
    while True:
        done = []
        for sockets, old in zip(pages, before, strict=True):
            closed = sockets.closes()[old["closes"] :]
            new_hellos = sockets.hellos - old["hellos"]
            done.append(
                sockets.live() == old["live"] and all(new_hellos[path] >= 1 for path, _ in closed)
            )
        if all(done):
            return
        assert time.monotonic() < deadline, "the sockets did not come back"
        pages[0].page.wait_for_timeout(50)  # lets Playwright deliver the pages' events


def test_rolling_restart_under_live_traffic_loses_nothing(browser, topology):
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw", first_name="Alice")
    staff = User.objects.create_user("sam", password="pw", first_name="Sam", is_staff=True)
    base = topology.base
    grace = graceful_timeout()

    customer_context = logged_in_context(browser, base, alice)
    staff_context = logged_in_context(browser, base, staff)
    sender = None
    try:
        for context in (customer_context, staff_context):
            context.add_init_script(RECORD_CLOSES)
        widget, inbox = customer_context.new_page(), staff_context.new_page()
        widget_sockets, inbox_sockets = Sockets(widget), Sockets(inbox)
        pages = [widget_sockets, inbox_sockets]

        widget.goto("/")
        open_widget(widget)
        wait_connected(widget)
        send_from_widget(widget, "Before the deploy")
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(["Before the deploy"], timeout=LIVE)
        conversation = customer_conversation(alice)
        customer_path = f"/ws/chat/user/{conversation.pk}/"
        staff_path = f"/ws/chat/admin/{conversation.pk}/"
        # A goes first: the worker holding the customer's (so far only) socket.
        (worker_a,) = topology.socket_holders(customer_path)
        worker_b = next(port for port in topology.worker_ports if port != worker_a)
        open_inbox(inbox)
        # The staff's conversation socket on B, so that A's restart must leave it alone.
        # nginx's round robin takes turns per request: requests of ours (one more each
        # time) shift the turns before the next reload (as in test_nginx_topology.py).
        before = topology.socket_holders(staff_path)
        row(inbox, conversation.pk).locator(".sc-row-link").click()
        wait_chat_connected(inbox)
        staff_worker = topology.new_socket_holder(staff_path, before)
        for attempt in range(1, 7):
            if staff_worker == worker_b:
                break
            before = topology.socket_holders(staff_path)
            for _ in range(attempt):
                urllib.request.urlopen(base + "/chat/health/live", timeout=5).read()
            inbox_sockets.reload()
            wait_chat_connected(inbox)
            staff_worker = topology.new_socket_holder(staff_path, before)
        assert staff_worker == worker_b, "the staff socket never reached the other worker"
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(["Before the deploy"], timeout=LIVE)

        cookies = {c["name"]: c["value"] for c in customer_context.cookies()}
        sender = Sender(base, conversation.pk, cookies)
        sender.start()
        deadline = time.monotonic() + 10
        while len(sender.acked) < 5:  # live traffic before the first SIGTERM
            assert time.monotonic() < deadline and sender.is_alive(), sender.retries
            widget.wait_for_timeout(50)

        present = presence(alice, staff)
        assert present[0] == 1 and present[1] >= 1, present
        exits: list[float] = []  # s from SIGTERM to exit, per worker
        for worker in (worker_a, worker_b):
            before = [sockets.snapshot() for sockets in pages]
            acked_before = len(sender.acked)
            took = topology.sigterm(worker, timeout=grace + SLACK)
            assert took < grace + SLACK, took
            exits.append(round(took, 2))
            wait_reconnected(pages, before)
            # The closed sockets left presence on their way out (well before PRESENCE_TTL,
            # 30 s): each user counts its live sockets only, not the reconnected ones twice.
            assert presence(alice, staff) == present, (presence(alice, staff), present)
            # Traffic went on meanwhile, through the other worker.
            assert len(sender.acked) > acked_before, sender.retries
            for sockets, old in zip(pages, before, strict=True):
                closed = sockets.closes()[old["closes"] :]
                # Only 1012 (service restart), once per socket of the stopped worker ...
                assert {code for _, code in closed} <= {1012}, closed
                assert len(closed) == len({path for path, _ in closed}), closed
                # ... and each came back exactly once: one new socket, one hello.
                expected = Counter(path for path, _ in closed)
                assert sockets.opens - old["opens"] == expected, (sockets.opens, old, closed)
                assert sockets.hellos - old["hellos"] == expected, (sockets.hellos, old)
                if worker == worker_b:
                    # Every socket was on B by now (A was down when the others came back).
                    assert expected == old["live"], (expected, old["live"])
            if worker == worker_a:
                # The customer's socket was on A and came back; the staff's, on B, stayed.
                assert (customer_path, 1012) in widget_sockets.closes()
                assert staff_path not in {path for path, _ in inbox_sockets.closes()}
                assert inbox_sockets.live()[staff_path] == 1
            topology.start_worker(worker)
            topology.wait_in_rotation(worker)

        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # a little traffic after the deploy too
            widget.wait_for_timeout(100)
        sender.stopping.set()
        sender.join(timeout=30)
        assert sender.error is None, sender.error
        sent = ["Before the deploy", *sender.texts()]
        # Everything acknowledged reached both pages, in order, once: the inbox shows them
        # all, the widget the newest WINDOW (panel.js keeps at most 120 in the DOM); their
        # sockets brought every one (live, or by sync after a reconnect).
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=LIVE)
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent[-WINDOW:], timeout=LIVE)
        for sockets in pages:
            assert set(sent[1:]) - sockets.texts == set(), sorted(set(sent[1:]) - sockets.texts)
        # Nothing reconnected after the fact: per path, one socket plus one per 1012.
        for sockets in pages:
            restarts = Counter(path for path, code in sockets.closes() if code == 1012)
            for path, opens in sockets.opens.items():
                assert opens - restarts[path] >= 1, (path, opens, restarts)
            assert [c for c in sockets.closes() if c[1] != 1012] == [], sockets.closes()
        print(
            f"\n{len(sent)} messages, {len(sender.retries)} retried POSTs, exits {exits} s; "
            f"widget sockets {dict(widget_sockets.opens)}, inbox {dict(inbox_sockets.opens)}"
        )
    finally:
        if sender is not None:
            sender.stopping.set()
            sender.join(timeout=30)
        customer_context.close()
        staff_context.close()

    stored = list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("text", flat=True)
    )
    assert stored == sent  # each once, nothing unacknowledged stored either
    for port in topology.worker_ports:
        log = topology.worker_log(port)
        assert not re.search(r'" 5\d\d\b|Traceback', log), log
        # Each worker was asked to stop once and finished its graceful shutdown.
        assert log.count("Shutting down") == 1 and "Finished server process" in log, log
