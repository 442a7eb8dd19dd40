"""Pushback in the browser (#14; docs/protocol.md, "Slowing down"): the example project on
uvicorn with SEND_QUEUE_LIMIT 1 on PostgreSQL. A customer's REST send waits for the
conversation row, locked from the test, and holds the worker's only slot. Meanwhile:

- the inbox composer's reply is answered 503 with Retry-After: the text stays in the box,
  a "busy" warning shows, and once the lock is gone the composer sends it again by itself
  (same client_id): the reply shows once, the box is empty, the warning gone;
- the widget's message is answered ``overloaded``: it stays "Sending" and goes again
  after retry_after (same client_id): stored once, shown once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from django_support_chat.models import Message

from ..test_pushback import HttpUser, RowLock, require_postgresql, wait_for
from .conftest import ROOT, start_server, stop_server
from .inbox_helpers import open_inbox, wait_chat_connected, watch_errors
from .widget_helpers import (
    assert_no_server_errors,
    customer_conversation,
    open_widget,
    send_from_widget,
    start_conversation,
    wait_connected,
)

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def live_url(transactional_db: None) -> Iterator[str]:
    """This module's server: one send at a time per worker."""
    require_postgresql()
    pythonpath = os.pathsep.join([str(ROOT / "example_project"), str(ROOT / "src"), str(ROOT)])
    process, base = start_server(
        {
            "DJANGO_SETTINGS_MODULE": "tests.pushback_settings",
            "PYTHONPATH": pythonpath,
            "PUSHBACK_LIMIT": "1",
        }
    )
    yield base
    stop_server(process)
    assert_no_server_errors(base)


@pytest.fixture
def staff(make_user):
    return make_user("sam", last_name="Support", is_staff=True)


@pytest.fixture
def customer_user(make_user):
    return make_user("casey", last_name="Customer")


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


class SlotHolder:
    """The customer's REST send that waits for the locked row, holding the only slot."""

    def __init__(self, live_url: str, user: Any, conversation_id: int) -> None:
        client = Client()
        client.force_login(user)
        key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
        self.http = HttpUser(live_url, key)
        self.path = f"/api/chat/conversations/{conversation_id}/messages/"
        self.lock = RowLock(conversation_id)
        self.answer: tuple[int, Any, bytes] | None = None
        self.thread = threading.Thread(target=self._post, daemon=True)

    def _post(self) -> None:
        self.answer = self.http.call(
            "POST", self.path, {"text": "holding the slot", "client_id": str(os.urandom(16).hex())}
        )

    def __enter__(self) -> SlotHolder:
        self.lock.__enter__()
        self.thread.start()
        wait_for(lambda: lock_waiters() >= 1, 10, "the holder's send waiting for the row")
        return self

    def release(self) -> None:
        self.lock.release()
        self.thread.join(10)
        assert self.answer is not None and self.answer[0] == 201, self.answer

    def __exit__(self, *exc: Any) -> None:
        if self.lock.thread.is_alive():
            self.lock.release()


def test_inbox_reply_refused_with_503_is_sent_again_by_itself(
    new_context, live_url, staff, customer_user
):
    conversation = start_conversation(customer_user, staff)
    inbox = new_context(staff).new_page()
    errors = watch_errors(inbox)
    open_inbox(inbox, f"/admin/chat/{conversation.pk}/")
    wait_chat_connected(inbox)
    box = inbox.locator("#sc-reply")
    text = "Looking into it right now"

    with SlotHolder(live_url, customer_user, conversation.pk) as holder:
        box.fill(text)
        box.press("Enter")
        busy = inbox.locator("#sc-alerts .sc-busy")
        expect(busy).to_contain_text("The server is busy", timeout=5000)
        expect(box).to_have_value(text)  # the text stays
        # Refused again while the slot is held (Retry-After 1 s): still one warning, the
        # text still there, nothing stored.
        inbox.wait_for_timeout(1800)
        expect(box).to_have_value(text)
        assert Message.objects.filter(text=text).count() == 0
        holder.release()

    history = inbox.locator("#sc-history")
    expect(history.get_by_text(text)).to_have_count(1, timeout=10_000)
    expect(box).to_have_value("")
    expect(inbox.locator("#sc-alerts .sc-busy")).to_have_count(0)
    assert Message.objects.filter(text=text).count() == 1
    refused = [e for e in errors if e.startswith("503 ")]
    assert refused and all("/reply" in e for e in refused), errors
    # htmx logs each error answer to the console; nothing else went wrong.
    expected = ("503 ", "Response Status Error Code 503 from /admin/chat/")
    assert [e for e in errors if not e.startswith(expected)] == []


def test_widget_message_refused_as_overloaded_goes_again_once(new_context, live_url, customer_user):
    page = new_context(customer_user).new_page()
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(str(data))))
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    conversation = customer_conversation(customer_user)
    text = "Is anyone there?"

    with SlotHolder(live_url, customer_user, conversation.pk) as holder:
        send_from_widget(page, text)
        wait_for(
            lambda: any('"overloaded"' in f for f in frames) or page.wait_for_timeout(50),
            10,
            "an overloaded error frame",
        )
        assert Message.objects.filter(text=text).count() == 0
        holder.release()

    panel = page.locator(".scw-panel")
    expect(panel.get_by_text(text)).to_have_count(1, timeout=10_000)
    wait_for(
        lambda: Message.objects.filter(text=text).exists() or page.wait_for_timeout(50),
        10,
        "the retried message stored",
    )
    page.wait_for_timeout(1500)  # no further resend after it was stored
    assert Message.objects.filter(text=text).count() == 1
    expect(panel.get_by_text(text)).to_have_count(1)
