"""The inbox notices a silently dead socket: the server process is frozen (SIGSTOP), so no
close frame and no TCP reset ever arrive. The shared client (realtime.js) must turn the Live
badge off within one heartbeat interval, then reconnect and catch up once it is back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from django.test import Client
from playwright.sync_api import expect

from .conftest import ROOT, start_server, stop_server
from .inbox_helpers import open_inbox, row
from .widget_helpers import quiet_send, start_conversation

pytestmark = [pytest.mark.browser]

HEARTBEAT = 2  # seconds, tests/e2e/fast_heartbeat_settings.py


@pytest.fixture
def frozen_server(transactional_db: None) -> Iterator[tuple[str, int]]:
    """A server of its own (it gets frozen), with a short heartbeat interval."""
    pythonpath = os.pathsep.join([str(ROOT / "example_project"), str(ROOT / "src"), str(ROOT)])
    process, base = start_server(
        {"DJANGO_SETTINGS_MODULE": "tests.e2e.fast_heartbeat_settings", "PYTHONPATH": pythonpath}
    )
    yield base, process.pid
    os.kill(process.pid, signal.SIGCONT)
    stop_server(process)


def test_live_badge_goes_off_within_one_heartbeat_and_comes_back(browser, frozen_server, make_user):
    base, pid = frozen_server
    staff, customer = make_user("sam", is_staff=True), make_user("casey")
    client = Client()
    client.force_login(staff)
    context = browser.new_context(base_url=base)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}]
    )
    try:
        page = context.new_page()
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        open_inbox(page)
        assert len(sockets) == 1
        badge = page.locator("#sc-live")

        os.kill(pid, signal.SIGSTOP)  # silent: the socket stays open, nothing comes back
        frozen_at = time.monotonic()
        page.wait_for_function(
            "document.querySelector('#sc-live').dataset.live !== 'on'",
            timeout=(HEARTBEAT + 1.5) * 1000,
        )
        took = time.monotonic() - frozen_at
        assert took <= HEARTBEAT + 1.0, took  # one interval, plus Playwright's polling
        expect(badge).not_to_have_text("Live")

        # Meanwhile a customer writes (stored; no server process could announce it).
        conversation = start_conversation(customer, staff)
        quiet_send(conversation, customer, "Written while you were cut off")

        # Two intervals of silence: the client gives the socket up and tries new ones (their
        # handshakes wait in the frozen server's backlog, or time out and are retried).
        page.wait_for_timeout((2 * HEARTBEAT + 1.5) * 1000)
        assert len(sockets) >= 2, sockets
        assert badge.get_attribute("data-live") == "reconnecting"

        os.kill(pid, signal.SIGCONT)
        # The client reconnects on its own (backoff) and the lobby reloads the list.
        expect(badge).to_have_attribute("data-live", "on", timeout=20_000)
        expect(row(page, conversation.pk)).to_contain_text(
            "Written while you were cut off", timeout=10_000
        )
    finally:
        context.close()
