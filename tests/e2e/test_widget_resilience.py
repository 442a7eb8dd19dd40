"""The widget when the network or the server misbehaves: offline queue, page changes with
unsent messages, lost acknowledgements, reconnects with backoff and catch-up, failures.

Exactly-once is checked in the database: every test counts the stored rows.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest
from playwright.sync_api import expect

from django_support_chat.models import Message

from .widget_helpers import (
    SocketGate,
    StaffSocket,
    customer_conversation,
    no_server_errors,  # noqa: F401 (a fixture)
    open_widget,
    send_from_widget,
    start_conversation,
    wait_connected,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_server_errors"),
]

DESKTOP = {"width": 1280, "height": 800}


def queue(page, user):
    raw = page.evaluate(f"localStorage.getItem('support-chat:queue:{user.pk}')")
    return json.loads(raw) if raw else []


def test_offline_message_waits_in_the_queue_and_is_delivered_exactly_once(
    new_context, make_user, live_url
):
    user, staff_user = make_user("casey"), make_user("sam", is_staff=True)
    context = new_context(user, viewport=DESKTOP)
    page = context.new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    staff = StaffSocket(live_url, staff_user, customer_conversation(user).pk, pump=page)

    context.set_offline(True)
    banner = page.locator(".scw-offline")
    expect(banner).to_be_visible()
    expect(banner).to_have_text("You're offline. Messages will send when you're back.")
    send_from_widget(page, "Sent while offline")
    pending = page.locator(".scw-pending .scw-item")
    expect(pending).to_have_count(1)
    expect(pending).to_have_class(re.compile("scw-sending"))
    expect(pending.locator(".scw-status")).to_have_attribute("title", "Sending")
    assert pending.locator(".scw-status-sending svg.sc-icon path").count() == 1  # the clock
    # Dimmed: lighter than a confirmed bubble (by colour, so the text keeps its contrast).
    colour = pending.locator(".scw-bubble").evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour != page.locator(".support-chat-launcher").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    page.wait_for_timeout(1500)
    assert Message.objects.count() == 0
    [entry] = queue(page, user)
    assert entry["text"] == "Sent while offline"

    context.set_offline(False)
    frame = staff.wait_for("message:new")
    assert frame["data"]["message"]["client_id"] == entry["id"]
    expect(pending).to_have_count(0)
    expect(page.locator(".scw-list .scw-own .scw-text")).to_have_text(["Sent while offline"])
    expect(banner).to_be_hidden()
    assert queue(page, user) == []
    page.wait_for_timeout(1000)
    assert list(Message.objects.values_list("text", flat=True)) == ["Sent while offline"]
    staff.close()


def test_queued_message_survives_a_page_change(new_context, make_user, live_url):
    """The server is unreachable (socket refused, REST failing): the message stays queued
    in localStorage across a navigation, and goes out once when the server is back."""
    user = make_user("casey")
    context = new_context(user, viewport=DESKTOP)
    gate = SocketGate(context)
    page = context.new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)

    gate.open = False
    gate.cut()
    context.route("**/api/chat/**", lambda route: route.abort())
    expect(page.locator(".scw-offline")).to_be_visible()  # after two failed reconnects
    send_from_widget(page, "Please do not lose me")
    expect(page.locator(".scw-pending .scw-item")).to_have_count(1)
    page.wait_for_timeout(1000)  # REST fallback is tried too, and fails
    assert Message.objects.count() == 0

    page.get_by_role("link", name="Pricing").click()
    page.wait_for_url("**/pricing/")
    # The panel was open: it is restored with the queued message, still pending.
    expect(page.locator(".scw-pending .scw-text")).to_have_text(["Please do not lose me"])
    assert len(queue(page, user)) == 1

    context.unroute("**/api/chat/**")
    gate.open = True
    expect(page.locator(".scw-pending .scw-item")).to_have_count(0, timeout=20_000)
    expect(page.locator(".scw-list .scw-own .scw-text")).to_have_text(["Please do not lose me"])
    page.wait_for_timeout(500)
    assert list(Message.objects.values_list("text", flat=True)) == ["Please do not lose me"]
    assert queue(page, user) == []


def test_queue_is_sent_from_the_next_page_even_with_the_panel_closed(
    new_context, make_user, live_url
):
    user = make_user("casey")
    context = new_context(user, viewport=DESKTOP)
    page = context.new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    context.set_offline(True)
    send_from_widget(page, "Queued, then closed")
    page.get_by_role("button", name="Close chat").click()
    context.set_offline(False)
    # A new page in the same browser before this one got to send it: the loader sees
    # the queue and loads the panel to send it, without opening it.
    page.close()
    other = context.new_page()
    other.goto("/pricing/")
    other.wait_for_function("typeof window.SupportChatPanel === 'function'")
    other.wait_for_function(f"!localStorage.getItem('support-chat:queue:{user.pk}')")
    expect(other.locator(".scw-panel")).to_be_hidden()
    assert list(Message.objects.values_list("text", flat=True)) == ["Queued, then closed"]


def test_a_lost_acknowledgement_is_resent_and_stored_once(new_context, make_user, live_url):
    user = make_user("casey")
    context = new_context(user, viewport=DESKTOP)
    gate = SocketGate(context)
    page = context.new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    # The server stores the message but its answer never arrives; then the line drops.
    gate.drop_from_server = lambda frame: frame["type"] in ("message:sent", "message:new")
    send_from_widget(page, "Only once, please")
    for _ in range(50):
        if Message.objects.exists():
            break
        page.wait_for_timeout(100)
    assert Message.objects.count() == 1
    expect(page.locator(".scw-pending .scw-item")).to_have_count(1)  # unconfirmed
    gate.drop_from_server = lambda frame: False
    gate.cut()
    # Reconnect: sync brings the stored message, and the resend is answered as a retry.
    expect(page.locator(".scw-pending .scw-item")).to_have_count(0, timeout=10_000)
    expect(page.locator(".scw-list .scw-own .scw-text")).to_have_text(["Only once, please"])
    page.wait_for_timeout(500)
    assert Message.objects.count() == 1
    assert queue(page, user) == []


def test_reconnects_with_backoff_and_catches_up(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), make_user("sam", is_staff=True)
    conversation = start_conversation(user, staff_user, "Before the cut")
    context = new_context(user, viewport=DESKTOP)
    gate = SocketGate(context)
    page = context.new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    staff = StaffSocket(live_url, staff_user, conversation.pk, pump=page)

    gate.open = False
    gate.cut()
    first = len(gate.attempts)
    # Staff writes while the customer is disconnected: these events are lost to them.
    staff.reply("While you were away 1")
    staff.reply("While you were away 2")
    page.wait_for_timeout(4000)
    retries = gate.attempts[first:]
    assert len(retries) >= 3
    gaps = [b - a for a, b in itertools.pairwise(retries)]
    # Exponential: each wait is longer than the one before (jitter stays within 50-100%).
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps)), gaps
    assert len(retries) < 8  # not a tight loop
    assert page.locator("#support-chat").get_attribute("data-connection") == "closed"

    gate.open = True
    wait_connected(page, timeout=20_000)
    texts = page.locator(".scw-theirs .scw-text")
    expect(texts).to_have_text(["Before the cut", "While you were away 1", "While you were away 2"])
    syncs = gate.sent("sync")
    # The catch-up asks for everything after the last message held, by seq.
    assert syncs[-1]["data"] == {"after_seq": Message.objects.get(text="Before the cut").seq}
    staff.close()


def test_a_rejected_message_fails_and_can_be_retried(new_context, make_user, live_url):
    user = make_user("casey")
    context = new_context(user, viewport=DESKTOP)
    gate = SocketGate(context)
    page = context.new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)

    # The first attempt is answered with an error frame, as the server does on failure.
    refused = []

    def refuse_first_send(frame):
        if frame["type"] == "message:send" and not refused:
            refused.append(frame)
            for ws, _ in gate.live:
                ws.send(
                    json.dumps(
                        {
                            "v": 1,
                            "type": "error",
                            "ref": frame["ref"],
                            "data": {"code": "unavailable", "message": "Try again later."},
                        }
                    )
                )
            return True
        return False

    gate.drop_from_page = refuse_first_send
    send_from_widget(page, "Will fail first")
    failed = page.locator(".scw-pending .scw-item.scw-failed")
    expect(failed).to_have_count(1)
    retry = failed.get_by_role("button")
    expect(retry).to_have_attribute("title", "Tap to retry")
    expect(retry).to_have_accessible_name("Not sent. Tap to retry")
    edge = failed.locator(".scw-bubble").evaluate("el => getComputedStyle(el).borderRightWidth")
    assert edge == "4px"
    page.wait_for_timeout(300)
    assert Message.objects.count() == 0
    # Failed messages are kept (also across pages) but not resent on their own.
    assert queue(page, user)[0]["failed"] is True
    retry.click()
    expect(page.locator(".scw-pending .scw-item")).to_have_count(0)
    expect(page.locator(".scw-list .scw-own .scw-text")).to_have_text(["Will fail first"])
    assert Message.objects.count() == 1


def test_invalid_text_fails_with_the_servers_reason(new_context, make_user, live_url):
    user = make_user("casey")
    page = new_context(user, viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    send_from_widget(page, "bell \x07 character")
    expect(page.locator(".scw-pending .scw-item.scw-failed")).to_have_count(1)
    # Screen readers are told why.
    expect(page.locator("#support-chat [aria-live=polite]")).to_contain_text("Not sent")
    assert Message.objects.count() == 0


def test_logout_elsewhere_stops_the_socket_for_good(new_context, make_user, live_url):
    user = make_user("casey")
    context = new_context(user, viewport=DESKTOP)
    page = context.new_page()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    other = context.new_page()
    other.goto("/")
    other.get_by_role("button", name="Log out").click()
    page.locator("#support-chat[data-connection=stopped]").wait_for(state="attached")
    count = len(sockets)
    page.wait_for_timeout(2000)
    assert len(sockets) == count  # 4001: no reconnect attempts
