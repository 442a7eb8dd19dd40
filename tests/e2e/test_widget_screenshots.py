"""Screenshots of the widget, desktop (1280x800) and mobile (390x844): closed, open, and
with a conversation. They are written to the test's temporary directory; with
``UPDATE_SCREENSHOTS=1`` they replace the ones in docs/screenshots/ (shown in
docs/widget.md):

    UPDATE_SCREENSHOTS=1 pytest tests/e2e/test_widget_screenshots.py
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from django_support_chat.models import Message

from .widget_helpers import (
    ROOT,
    StaffSocket,
    no_server_errors,  # noqa: F401 (a fixture)
    open_widget,
    quiet_send,
    start_conversation,
    wait_connected,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_server_errors"),
]

SIZES = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs/screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


@pytest.mark.parametrize("device", ["desktop", "mobile"])
def test_screenshots(device, new_context, make_user, live_url, shots_dir):
    viewport = SIZES[device]
    customer = make_user(f"casey_{device}", first_name="Casey")
    staff = make_user(f"sam_{device}", first_name="Sam", last_name="Rivera", is_staff=True)
    conversation = start_conversation(customer, staff)
    Message.objects.filter(conversation=conversation).update(
        created_at=timezone.now() - timedelta(days=1, minutes=5)
    )
    quiet_send(conversation, staff, "Hi Casey! Thanks for writing. Which report is it?")
    quiet_send(conversation, staff, "A link to the dashboard helps: https://example.com/d/42")

    # Closed, with the unread badge rendered by the server.
    page = new_context(customer, viewport=viewport).new_page()
    page.goto("/")
    expect(page.locator(".support-chat-badge")).to_have_text("2 new")
    if device == "desktop":
        page.locator(".support-chat-launcher").hover()
        page.wait_for_timeout(300)
    page.screenshot(path=shots_dir / f"widget-{device}-closed.png")

    # Open, nothing written yet: the empty state.
    fresh = new_context(make_user(f"nora_{device}"), viewport=viewport).new_page()
    fresh.goto("/")
    open_widget(fresh)
    wait_connected(fresh)
    expect(fresh.locator(".scw-empty")).to_be_visible()
    fresh.wait_for_timeout(300)
    fresh.screenshot(path=shots_dir / f"widget-{device}-open.png")

    # A conversation: history, a live exchange, receipts, support typing.
    open_widget(page)
    wait_connected(page)
    desk = StaffSocket(live_url, staff, conversation.pk, pump=page)
    page.locator(".scw-input").fill("The weekly revenue report. It stopped updating on Monday.")
    page.locator(".scw-input").press("Enter")
    desk.wait_for("message:new")
    desk.send("message:read", {})
    desk.send("typing:start")
    expect(page.locator(".scw-typing")).to_be_visible()
    page.locator(".scw-input").fill("Thanks!")
    page.wait_for_timeout(400)
    page.screenshot(path=shots_dir / f"widget-{device}-messages.png")
    desk.close()
    for name in ("closed", "open", "messages"):
        assert (shots_dir / f"widget-{device}-{name}.png").stat().st_size > 10_000
