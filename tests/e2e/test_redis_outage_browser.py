"""A Redis outage seen from the real UIs: the customer's widget (Chromium, worker A) and the
staff inbox with that conversation open (a second browser context, worker B), two uvicorn
workers of the example project on a redis-server of the test's own.

A message goes both ways live first (Redis carries it from one worker to the other). Then
redis-server is killed (SIGKILL) for a few seconds; meanwhile both UIs send (type + Enter:
the widget over its WebSocket, the inbox through its htmx form) and each side posts one
message over REST to the *other* worker. Every send is acknowledged although nothing can be
published. Redis is started again on the same port, and, without a reload, both pages must
show every message exactly once, in order, within a few seconds (the workers tell their
sockets to ``resync``; docs/protocol.md, "Delivery guarantees"). The database holds each
message once with seq 1..n, and no worker logged a 5xx or a traceback.

The redis-server and worker fixtures are tests/realtime/test_redis_outage.py's.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from django_support_chat.models import Message

from ..realtime import test_redis_outage as outage
from ..realtime.test_redis_outage import OUTAGE, log_of, people, server_errors
from .inbox_helpers import open_inbox, wait_chat_connected, watch_errors
from .widget_helpers import open_widget, send_from_widget, session_cookie, wait_connected

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

CAUGHT_UP_WITHIN = 10_000  # ms after Redis is back (docs: typically 2-3 s)
ACK_WITHIN = 10_000  # ms for a send to be acknowledged, Redis or not

WIDGET_TEXTS = ".scw-item[data-id] .scw-text"  # stored messages (queued ones have no id)
INBOX_TEXTS = "#sc-history .sc-msg .sc-bubble"


# The fault test's fixtures: its own redis-server (kill / start on the same port) and two
# uvicorn workers of the example project on it (PostgreSQL required, they share the DB).
redis_server = outage.redis_server
workers = outage.workers


# What a worker logs, with a traceback, while Redis is away: reports of the outage itself
# (channels-redis' reconnect loop, events that could not be published, presence and the
# heartbeat sweep, the throttle failing open, a socket's guarded cleanup, the lobby's
# presence question). Anything else (a message:send or typing frame that failed, an
# Internal Server Error) is a bug.
OUTAGE_REPORTS = (
    "Unexpected exception in receive task",
    "events.publish_failed ",  # "events.publish_failed type=...: Could not publish to ..."
    "Presence refresh failed",
    "Heartbeat sweep failed",
    "ratelimit.cache_unavailable ",
    # A socket closed soon after the restart: its presence connection from before the
    # outage is dead, and the guarded cleanup says so (the entry expires anyway).
    "Cleanup of socket ",
    # The inbox asks who is online after reloading its list; the presence store is
    # Redis, so the question gets an "unavailable" answer (no message depends on it).
    "Presence store unavailable for presence:query",
)


# Lines inside a record: chained tracebacks, and the exception line ("redis.exceptions.
# ConnectionError: Error 111 ...", "uvicorn.protocols.utils.ClientDisconnected").
CHAINED_OR_EXCEPTION = r"During handling|The above exception|[\w.]+(: \S.*)?$"


def logged_with_traceback(base: str) -> list[str]:
    """The first line of every record in the worker's log that carries a traceback."""
    records, header = [], ""
    for line in log_of(base).read_text(errors="replace").splitlines():
        if line.startswith("Traceback (most recent call last)"):
            if header:
                records.append(header)
            header = ""  # a chained traceback belongs to the same record
        elif line and not line[0].isspace() and not re.match(CHAINED_OR_EXCEPTION, line):
            header = line
    return records


@pytest.fixture(autouse=True)
def _no_events_from_the_test_process(settings):
    """Only the workers publish; this process has a Playwright event loop in its thread."""
    settings.CHANNEL_LAYERS = {}


def logged_in_context(browser: Any, base: str, user: Any) -> Any:
    context = browser.new_context(base_url=base)
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": session_cookie(user), "url": base}]
    )
    return context


def watch_resync(ws: Any, times: list[float]) -> None:
    """Note when one of the page's sockets is told to ``resync``."""

    def received(payload: str | bytes) -> None:
        if isinstance(payload, str) and json.loads(payload).get("type") == "resync":
            times.append(time.monotonic())

    ws.on("framereceived", received)


def post_message(context: Any, base: str, conversation_id: int, text: str) -> dict[str, Any]:
    """``POST /api/chat/conversations/<id>/messages/`` to ``base`` with the context's session
    (cookies are per host, not per port: one session works on both workers)."""
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    response = context.request.post(
        f"{base}/api/chat/conversations/{conversation_id}/messages/",
        data=json.dumps({"text": text, "client_id": str(uuid.uuid4())}),
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert response.status == 201, (response.status, response.text())
    return response.json()


def test_widget_and_inbox_show_every_message_after_a_redis_outage(browser, workers, redis_server):
    alice, staff, conversation = people()
    (_, base_a), (_, base_b) = workers
    sent: list[str] = []  # every acknowledged message, in the order they were stored

    customer_context = logged_in_context(browser, base_a, alice)
    staff_context = logged_in_context(browser, base_b, staff)
    try:
        widget = customer_context.new_page()
        inbox = staff_context.new_page()
        widget_errors, inbox_errors = watch_errors(widget), watch_errors(inbox)
        script_errors: list[str] = []
        resyncs: dict[str, list[float]] = {"widget": [], "inbox": []}
        for name, page in (("widget", widget), ("inbox", inbox)):
            page.on("websocket", lambda ws, name=name: watch_resync(ws, resyncs[name]))
        for page in (widget, inbox):
            page.on("pageerror", lambda error: script_errors.append(str(error)))
        widget.goto("/")
        open_widget(widget)
        wait_connected(widget)
        open_inbox(inbox, f"/admin/chat/{conversation.pk}/")
        wait_chat_connected(inbox)

        def from_widget(text: str) -> None:
            send_from_widget(widget, text)
            sent.append(text)
            # Acknowledged: the queued bubble became the stored message (message:sent).
            expect(widget.locator(WIDGET_TEXTS).last).to_have_text(text, timeout=ACK_WITHIN)
            expect(widget.locator(".scw-sending")).to_have_count(0, timeout=ACK_WITHIN)

        def from_inbox(text: str) -> None:
            inbox.locator("#sc-reply").fill(text)
            inbox.locator("#sc-reply").press("Enter")
            sent.append(text)
            # Acknowledged: the form's answer (2xx) empties the reply box.
            expect(inbox.locator("#sc-reply")).to_have_value("", timeout=ACK_WITHIN)

        def over_rest(context: Any, base: str, text: str) -> None:
            post_message(context, base, conversation.pk, text)
            sent.append(text)

        # Live first: each side sees the other's message through Redis, across workers.
        from_widget("Before: hello from the widget")
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=ACK_WITHIN)
        from_inbox("Before: hello from the inbox")
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent, timeout=ACK_WITHIN)

        redis_server.kill()
        killed = time.monotonic()
        from_widget("During: widget 1")
        from_inbox("During: inbox 1")
        over_rest(customer_context, base_b, "During: customer over REST to worker B")
        over_rest(staff_context, base_a, "During: staff over REST to worker A")
        from_widget("During: widget 2")
        from_inbox("During: inbox 2")
        left = OUTAGE - (time.monotonic() - killed)
        assert left > 0, f"the sends took {OUTAGE - left:.1f}s: longer than the outage"
        widget.wait_for_timeout(left * 1000)  # the outage itself
        assert resyncs == {"widget": [], "inbox": []}
        restarting = time.monotonic()
        redis_server.start()
        back = time.monotonic()  # redis-server answers PING

        # No reload: both pages catch up by themselves (resync, sync by seq).
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent, timeout=CAUGHT_UP_WITHIN)
        widget_caught_up = time.monotonic() - back
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=CAUGHT_UP_WITHIN)
        inbox_caught_up = time.monotonic() - back

        # The workers told both pages to resync once Redis delivered again.
        deadline = back + CAUGHT_UP_WITHIN / 1000
        while not (resyncs["widget"] and resyncs["inbox"]) and time.monotonic() < deadline:
            widget.wait_for_timeout(50)  # Playwright delivers the frame events meanwhile
        assert resyncs["widget"] and resyncs["inbox"], resyncs

        # And both are still live: one more message each way after the recovery.
        from_widget("After: the widget again")
        from_inbox("After: the inbox again")
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent, timeout=ACK_WITHIN)
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=ACK_WITHIN)

        assert [e for e in widget_errors + inbox_errors if re.match(r"5\d\d ", e)] == []
        assert script_errors == []
    finally:
        customer_context.close()
        staff_context.close()

    rows = list(
        Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", "text")
    )
    assert [text for _, text in rows] == sent, "every acknowledged message stored once, in order"
    assert [seq for seq, _ in rows] == list(range(1, len(sent) + 1))
    assert server_errors([base_a, base_b]) == []
    for base in (base_a, base_b):
        unexpected = [r for r in logged_with_traceback(base) if not r.startswith(OUTAGE_REPORTS)]
        assert unexpected == [], unexpected
    print(
        f"\n{len(sent)} messages; redis-server restarted in {back - restarting:.2f}s; after it "
        f"answered (s): resync widget {resyncs['widget'][0] - back:.2f}, inbox "
        f"{resyncs['inbox'][0] - back:.2f}; all shown: widget {widget_caught_up:.2f}, "
        f"inbox {inbox_caught_up:.2f}"
    )
