"""The end-user chat widget in headless Chromium against the example site on uvicorn.

The customer side is always the real widget; the staff side is a WebSocket opened by the
test (``ws/chat/admin/<id>/``), or the service layer where liveness is not the point.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from django_support_chat.models import Conversation, Message

from .widget_helpers import (
    StaffSocket,
    customer_conversation,
    no_server_errors,  # noqa: F401 (a fixture)
    open_widget,
    quiet_send,
    send_from_widget,
    start_conversation,
    wait_connected,
    watch_page,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_server_errors"),
]

DESKTOP = {"width": 1280, "height": 800}
PANEL = ".scw-panel"


def box(page, selector):
    return page.locator(selector).bounding_box()


def assets_requested(requests):
    return sorted(
        url.rsplit("/", 1)[1] for url in requests if "/static/support_chat/widget/" in url
    )


# -- entry point -----------------------------------------------------------------------


def test_launcher_size_place_layer_and_tooltip_on_desktop(new_context, make_user, live_url):
    page = new_context(make_user("casey"), viewport=DESKTOP).new_page()
    errors = watch_page(page)
    page.goto("/")
    launcher = page.locator(".support-chat-launcher")
    assert box(page, ".support-chat-launcher") == {
        "x": 1280 - 20 - 56,
        "y": 800 - 20 - 56,
        "width": 56,
        "height": 56,
    }
    assert launcher.evaluate("el => el.closest('.chat-visible-auth') !== null")
    classes = launcher.get_attribute("class").split()
    assert {"btn", "btn-primary", "rounded-circle", "shadow"} <= set(classes)
    assert launcher.locator("svg.sc-icon").count() == 1  # the package's own icon
    # Above the navbar, below Bootstrap's modal backdrop (1050).
    z_index = int(launcher.evaluate("el => getComputedStyle(el).zIndex"))
    navbar_z = int(page.locator("nav.navbar").evaluate("el => getComputedStyle(el).zIndex"))
    assert navbar_z < z_index < 1050
    # No badge without unread messages; tooltip on hover and on keyboard focus.
    expect(page.locator(".support-chat-badge")).to_be_hidden()
    tooltip = page.locator(".support-chat-tooltip")
    assert float(tooltip.evaluate("el => getComputedStyle(el).opacity")) == 0
    launcher.hover()
    expect(tooltip).to_have_text("Chat with support")
    page.wait_for_function(
        "getComputedStyle(document.querySelector('.support-chat-tooltip')).opacity > 0.8"
    )
    shadow = launcher.evaluate("el => getComputedStyle(el).boxShadow")
    page.mouse.move(10, 10)
    page.wait_for_function(
        "getComputedStyle(document.querySelector('.support-chat-tooltip')).opacity == 0"
    )
    assert shadow != launcher.evaluate("el => getComputedStyle(el).boxShadow")  # shadow-lg on hover
    assert errors == []


def test_the_offset_custom_property_moves_button_and_panel(new_context, make_user, live_url):
    # WIDGET_OFFSET_* settings render into this property (tests/test_widget_tag.py); a
    # host may also set it in CSS, e.g. to clear a cookie banner.
    page = new_context(make_user("casey"), viewport=DESKTOP).new_page()
    page.goto("/")
    page.locator("#support-chat").evaluate("el => el.style.setProperty('--sc-offset', '96px')")
    assert box(page, ".support-chat-launcher")["y"] == 800 - 96 - 56
    open_widget(page)
    panel = box(page, PANEL)
    assert panel["x"] + panel["width"] == 1280 - 96
    assert panel["y"] + panel["height"] <= 800 - 96 - 56


def test_only_the_loader_until_the_user_shows_interest(new_context, make_user, live_url):
    context = new_context(make_user("casey"), viewport=DESKTOP)
    page = context.new_page()
    requests, sockets = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto("/")
    page.wait_for_load_state("networkidle")
    assert assets_requested(requests) == ["launcher.css", "loader.js"]
    assert not [url for url in requests if "/api/chat/" in url]
    assert sockets == []  # no conversation yet: nothing to listen to
    page.locator(".support-chat-launcher").hover()
    page.wait_for_function("typeof window.SupportChatPanel === 'function'")
    assert assets_requested(requests) == ["launcher.css", "loader.js", "panel.css", "panel.js"]
    # Hovering did not create a conversation; opening does.
    assert not Conversation.objects.exists()
    open_widget(page)
    wait_connected(page)
    assert Conversation.objects.count() == 1


def test_panel_is_preloaded_when_there_is_something_unread(new_context, make_user, live_url):
    user, staff = make_user("casey"), make_user("sam", is_staff=True)
    start_conversation(user, staff, "We replied")
    page = new_context(user, viewport=DESKTOP).new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/")
    page.wait_for_function("typeof window.SupportChatPanel === 'function'")
    assert "panel.js" in assets_requested(requests)
    expect(page.locator(PANEL)).to_be_hidden()  # ready, but not opened for the user


# -- the conversation ------------------------------------------------------------------


def test_customer_sends_staff_receives_live_and_replies_live(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), make_user("sam", first_name="Sam", is_staff=True)
    page = new_context(user, viewport=DESKTOP).new_page()
    errors = watch_page(page)
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    expect(page.locator(".scw-empty")).to_have_text("Ask us anything. We reply quickly.")
    expect(page.locator(".scw-dot")).to_have_class(re.compile("bg-secondary"))  # nobody on duty
    staff = StaffSocket(live_url, staff_user, customer_conversation(user).pk)
    expect(page.locator(".scw-dot")).to_have_class(re.compile("bg-success"))  # presence, live

    # The customer types: staff is told.
    page.locator(".scw-input").press_sequentially("Hello")
    typing = staff.wait_for("typing:start", lambda f: f["data"]["side"] == "user")
    assert typing["data"]["user_id"] == user.pk
    send_from_widget(page, "Hello, my export is stuck")
    frame = staff.wait_for("message:new")
    assert frame["data"]["message"]["text"] == "Hello, my export is stuck"
    own = page.locator(".scw-own").last
    expect(own.locator(".scw-text")).to_have_text("Hello, my export is stuck")
    expect(page.locator(".scw-empty")).to_be_hidden()
    expect(page.locator(".scw-input")).to_have_value("")
    # Receipts, live: sent -> delivered -> read as staff's client reports them.
    status = own.locator(".scw-status")
    expect(status).to_have_class(re.compile("scw-status-sent"))
    staff.send("message:delivered", {"up_to_id": frame["data"]["message"]["id"]})
    expect(status).to_have_class(re.compile("scw-status-delivered"))
    staff.send("message:read", {})
    expect(status).to_have_class(re.compile("scw-status-read"))
    expect(status).to_have_attribute("title", "Read")

    # Staff types: the customer sees the dots.
    staff.send("typing:start")
    expect(page.locator(".scw-typing")).to_be_visible()
    staff.send("typing:stop")
    expect(page.locator(".scw-typing")).to_be_hidden()

    staff.send("typing:start")
    expect(page.locator(".scw-typing")).to_be_visible()
    reply = staff.reply("Hi Casey, looking at it now.")
    theirs = page.locator(".scw-theirs").last
    expect(theirs.locator(".scw-text")).to_have_text("Hi Casey, looking at it now.")
    expect(page.locator(".scw-typing")).to_be_hidden()  # the message replaces the dots
    expect(page.locator(".scw-name").last).to_have_text("Sam")
    # The widget reports the reply delivered and (the panel is open, at the bottom) read.
    staff.wait_for(
        "message:read",
        lambda f: f["data"]["side"] == "user" and f["data"]["up_to_id"] >= reply["id"],
    )
    assert Conversation.objects.get().unread_user_count == 0

    staff.close()
    expect(page.locator(".scw-dot")).to_have_class(re.compile("bg-secondary"))
    assert Message.objects.count() == 2
    assert errors == []


def test_bubbles_grouping_dates_and_timestamps(new_context, make_user, live_url):
    from datetime import timedelta

    from django.utils import timezone

    user, staff = make_user("casey"), make_user("sam", first_name="Sam", is_staff=True)
    conversation = start_conversation(user, staff, "First reply", "Second reply")
    # Move the first message to three days ago: a date divider separates it.
    first = Message.objects.order_by("id").first()
    first.created_at = timezone.now() - timedelta(days=3)
    first.save()
    page = new_context(user, viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    expect(page.locator(".scw-item")).to_have_count(3)
    days = page.locator(".scw-day").all_inner_texts()
    assert len(days) == 2 and days[1] == "Today"
    own = page.locator(".scw-own .scw-bubble").first
    theirs = page.locator(".scw-theirs .scw-bubble")
    for cls in ("bg-primary", "text-white", "rounded-3", "ms-auto"):
        expect(own).to_have_class(re.compile(cls))
    for cls in ("bg-white", "border", "rounded-3", "me-auto"):
        expect(theirs.first).to_have_class(re.compile(cls))
    # Own messages on the right, staff on the left.
    log = box(page, ".scw-log")
    own_box, theirs_box = own.bounding_box(), theirs.first.bounding_box()
    assert own_box["x"] + own_box["width"] > log["x"] + log["width"] - 24
    assert theirs_box["x"] < log["x"] + 24
    # Consecutive staff messages form a group: one name, reduced spacing.
    expect(page.locator(".scw-name")).to_have_count(1)
    lines = page.locator(".scw-theirs .scw-line")
    expect(lines.nth(0)).to_have_class(re.compile(r"\bmt-2\b"))
    expect(lines.nth(1)).to_have_class(re.compile(r"\bmt-1\b"))
    # Timestamps: a <time> per bubble, muted for staff, light on primary for own.
    expect(page.locator(".scw-bubble time")).to_have_count(3)
    expect(page.locator(".scw-own .scw-meta")).to_have_class(re.compile("text-light"))
    expect(page.locator(".scw-theirs .scw-meta").first).to_have_class(re.compile("text-muted"))
    assert conversation.pk == customer_conversation(user).pk


def test_panel_layout_on_desktop_and_tablet(new_context, make_user, live_url):
    page = new_context(make_user("casey"), viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    panel = box(page, PANEL)
    assert panel["width"] == 360
    assert panel["x"] + panel["width"] == 1280 - 20  # right-aligned with the launcher
    assert panel["y"] + panel["height"] <= 800 - 20 - 56  # above it
    assert box(page, ".scw-log")["height"] == pytest.approx(800 * 0.55, abs=1)
    for cls in ("card", "shadow", "rounded"):
        expect(page.locator(PANEL)).to_have_class(re.compile(rf"\b{cls}\b"))
    expect(page.locator(".scw-panel .card-header h2")).to_have_text("Support")
    expect(page.locator(".scw-input")).to_have_attribute("placeholder", "Type your message…")
    for label in ("Minimize chat", "Close chat", "Send"):
        expect(page.get_by_role("button", name=label, exact=True)).to_be_visible()
    # Fade + slide up, 150-200 ms.
    duration = page.locator(PANEL).evaluate("el => getComputedStyle(el).transitionDuration")
    assert all(0.15 <= float(d.rstrip("s")) <= 0.2 for d in duration.split(","))
    assert "opacity" in page.locator(PANEL).evaluate(
        "el => getComputedStyle(el).transitionProperty"
    )

    # 577-992 px: 75% of the viewport, capped at 420 px (75% is at least 433 px there).
    for name, width in (("tess", 800), ("sid", 600)):
        tablet = new_context(make_user(name), viewport={"width": width, "height": 900}).new_page()
        tablet.goto("/")
        open_widget(tablet)
        assert box(tablet, PANEL)["width"] == 420
        assert box(tablet, ".scw-log")["height"] == pytest.approx(900 * 0.55, abs=1)


def test_mobile_viewport_shows_the_full_width_panel(new_context, make_user, live_url):
    page = new_context(
        make_user("casey"), viewport={"width": 390, "height": 844}, has_touch=True
    ).new_page()
    page.goto("/")
    assert box(page, ".support-chat-launcher") == {
        "x": 390 - 16 - 52,
        "y": 844 - 16 - 52,
        "width": 52,
        "height": 52,
    }
    page.locator(".support-chat-launcher").tap()
    page.locator(".scw-panel.scw-in").wait_for()
    page.wait_for_timeout(250)  # the slide-up transition
    panel = box(page, PANEL)
    assert panel["x"] == 0 and panel["width"] == 390
    assert panel["y"] + panel["height"] == pytest.approx(844, abs=1)  # along the bottom edge
    assert panel["height"] <= 844 * 0.8 + 1
    # The composer stays at the bottom of the panel, in view.
    composer = box(page, ".scw-composer")
    assert composer["y"] + composer["height"] == pytest.approx(844, abs=2)
    wait_connected(page)
    send_from_widget(page, "Sent from my phone")
    expect(page.locator(".scw-own .scw-text")).to_have_text("Sent from my phone")


def test_textarea_grows_from_one_to_four_rows(new_context, make_user, live_url):
    page = new_context(make_user("casey"), viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    textarea = page.locator(".scw-input")
    one = textarea.bounding_box()["height"]
    heights = []
    for lines in (2, 3, 4, 6):
        textarea.fill("\n".join(["line"] * lines))
        heights.append(textarea.bounding_box()["height"])
    row = heights[0] - one
    assert row > 15
    assert heights[1] == pytest.approx(one + 2 * row, abs=1)
    assert heights[2] == pytest.approx(one + 3 * row, abs=1)
    assert heights[3] == heights[2]  # capped at four rows, then it scrolls
    # Shift+Enter adds a line; Enter sends.
    textarea.fill("")
    textarea.press_sequentially("a")
    textarea.press("Shift+Enter")
    textarea.press_sequentially("b")
    expect(textarea).to_have_value("a\nb")


def test_new_messages_badge_while_scrolled_up(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), make_user("sam", is_staff=True)
    conversation = start_conversation(user, staff_user, *[f"Old reply {i}" for i in range(40)])
    page = new_context(user, viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    staff = StaffSocket(live_url, staff_user, conversation.pk)
    page.locator(".scw-log").evaluate("el => { el.scrollTop = 200; }")
    page.wait_for_timeout(100)
    staff.reply("New one")
    staff.reply("And another")
    badge = page.locator(".scw-new")
    expect(badge).to_be_visible()
    expect(badge).to_have_text(re.compile(r"^\s*2 new\s*$"))
    for cls in ("badge", "bg-primary", "shadow"):
        expect(badge).to_have_class(re.compile(cls))
    # Sticky: at the bottom of the visible log.
    log = box(page, ".scw-log")
    badge_box = badge.bounding_box()
    assert log["y"] + log["height"] - 60 < badge_box["y"] < log["y"] + log["height"]
    # Not read while scrolled up.
    assert Conversation.objects.get().unread_user_count == 2
    badge.click()
    expect(badge).to_be_hidden()
    assert (
        page.locator(".scw-log").evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight")
        < 2
    )
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text("And another")
    staff.wait_for("message:read", lambda f: f["data"]["side"] == "user")
    staff.close()


# -- across pages ----------------------------------------------------------------------


def test_open_state_and_draft_survive_navigation(new_context, make_user, live_url):
    page = new_context(make_user("casey"), viewport=DESKTOP).new_page()
    errors = watch_page(page)
    page.goto("/")
    open_widget(page)
    page.locator(".scw-input").fill("Half-written question")
    page.get_by_role("link", name="Pricing").click()
    page.wait_for_url("**/pricing/")
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()
    expect(page.locator(".scw-input")).to_have_value("Half-written question")
    # Restoring does not steal the focus from the page.
    assert page.evaluate("document.activeElement === document.body")

    page.get_by_role("button", name="Minimize chat").click()
    expect(page.locator(PANEL)).to_be_hidden()
    page.get_by_role("link", name="Home").click()
    page.wait_for_url(live_url + "/")
    # Minimized: still loaded and connected in the background, not shown.
    page.wait_for_function("typeof window.SupportChatPanel === 'function'")
    wait_connected(page)
    expect(page.locator(PANEL)).to_be_hidden()
    page.locator(".support-chat-launcher").click()
    expect(page.locator(".scw-input")).to_have_value("Half-written question")

    page.get_by_role("button", name="Close chat").click()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.get_by_role("link", name="Pricing").click()
    page.wait_for_load_state("networkidle")
    assert "panel.js" not in assets_requested(requests)  # closed: only the loader
    assert errors == []


def test_customer_away_sees_badge_on_next_page_and_reading_clears_it(
    new_context, make_user, live_url
):
    user, staff = make_user("casey"), make_user("sam", is_staff=True)
    conversation = start_conversation(user, staff)
    # Staff replies while the customer is not on the site.
    quiet_send(conversation, staff, "We fixed your export.")
    quiet_send(conversation, staff, "Anything else?")
    page = new_context(user, viewport=DESKTOP).new_page()
    page.route("**/static/support_chat/widget/*.js", lambda route: route.abort())
    page.goto("/")
    # Rendered by the server, before (here: without) any script.
    expect(page.locator(".support-chat-badge")).to_be_visible()
    expect(page.locator(".support-chat-badge")).to_have_text("2 new")
    page.unroute("**/static/support_chat/widget/*.js")
    page.goto("/pricing/")
    expect(page.locator(".support-chat-badge")).to_have_text("2 new")
    open_widget(page)
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text("Anything else?")
    expect(page.locator(".support-chat-badge")).to_be_hidden()
    page.wait_for_function("document.querySelector('.support-chat-badge').hidden")
    conversation.refresh_from_db()
    assert conversation.unread_user_count == 0
    page.get_by_role("link", name="Home").click()
    page.wait_for_url(live_url + "/")
    expect(page.locator(".support-chat-badge")).to_be_hidden()


def test_badge_goes_live_while_the_panel_is_not_loaded(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), make_user("sam", is_staff=True)
    conversation = start_conversation(user, staff_user)
    page = new_context(user, viewport=DESKTOP).new_page()
    sockets, frames = [], []
    page.on(
        "websocket",
        lambda ws: (
            sockets.append(ws),
            ws.on("framereceived", lambda payload: frames.append(payload)),
        ),
    )
    page.goto("/")
    expect(page.locator(".support-chat-badge")).to_be_hidden()
    # The loader's light socket says hello; the panel is not loaded.
    for _ in range(100):
        if any('"hello"' in frame for frame in frames):
            break
        page.wait_for_timeout(50)
    assert len(sockets) == 1 and any('"hello"' in frame for frame in frames)
    assert page.evaluate("typeof window.SupportChatPanel") == "undefined"
    staff = StaffSocket(live_url, staff_user, conversation.pk)
    staff.reply("Ping from support")
    expect(page.locator(".support-chat-badge")).to_have_text("1 new")
    # Something to show: the panel is fetched, ready for the click.
    page.wait_for_function("typeof window.SupportChatPanel === 'function'")
    staff.close()


# -- safety ----------------------------------------------------------------------------


def test_markup_shows_as_text_and_runs_nothing(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), make_user("sam", is_staff=True)
    page = new_context(user, viewport=DESKTOP).new_page()
    errors = watch_page(page)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    staff = StaffSocket(live_url, staff_user, customer_conversation(user).pk)
    evil = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script><b>bold</b>'
    send_from_widget(page, evil)
    staff.wait_for("message:new")
    staff.reply(
        '<svg onload="window.__xss=3"></svg><a href="javascript:window.__xss=4">x</a> '
        "see https://example.com/docs"
    )
    expect(page.locator(".scw-theirs .scw-text")).to_contain_text("<svg onload=")
    expect(page.locator(".scw-own .scw-text")).to_have_text(evil)
    log = page.locator(".scw-log")
    # (The only SVGs in the log are the panel's own icons, never in a message.)
    assert log.locator("img, script, svg:not(.sc-icon), b").count() == 0
    assert log.locator(".scw-text svg, .scw-text *:not(a)").count() == 0
    assert log.locator("a[href^=javascript]").count() == 0
    # URLs become safe links.
    link = log.locator("a[href='https://example.com/docs']")
    expect(link).to_have_attribute("rel", "nofollow noopener noreferrer")
    # The announcement for screen readers is text too.
    assert page.locator("#support-chat [aria-live=polite] svg").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    # Reload: history from the REST API renders the same way.
    page.reload()
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()  # it was open: still open
    expect(page.locator(".scw-own .scw-text")).to_have_text(evil)
    assert page.locator(".scw-log").locator("img, script, svg:not(.sc-icon), b").count() == 0
    assert page.locator(".scw-log .scw-text svg").count() == 0
    assert page.evaluate("window.__xss") is None
    assert errors == []
    staff.close()
