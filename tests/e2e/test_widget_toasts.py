"""The customer's toasts (issue #12, item 1) and the email link (``#support-chat``), in
headless Chromium against the example site on uvicorn.

A staff reply that arrives while the panel is closed or minimized shows a toast beside
the launcher; the staff side is a real WebSocket opened by the test (``StaffSocket``).
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from django_support_chat import names

from .test_widget_a11y import axe_script, axe_violations  # noqa: F401 (a fixture)
from .test_widget_screenshots import shots_dir  # noqa: F401 (a fixture)
from .widget_helpers import (
    StaffSocket,
    customer_conversation,
    no_server_errors,  # noqa: F401 (a fixture)
    open_widget,
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
PHONE = {"width": 390, "height": 844}
TOAST = ".scw-toast"
TOAST_TIME = 8  # seconds, panel.js TOAST_TIME


def staff_member(make_user):
    # An email and a login that must never reach the customer.
    return make_user(
        "sam.lee", first_name="Sam", last_name="Lee", email="sam.lee@corp.example", is_staff=True
    )


def received_frames(page) -> list[str]:
    """Every frame the page's sockets receive (the list grows while the page lives)."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    return frames


def wait_for_frame(page, frames: list[str], *needles: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not any(all(needle in frame for needle in needles) for frame in frames):
        assert time.monotonic() < deadline, f"no frame with {needles} within {timeout}s"
        page.wait_for_timeout(50)


def loader_listening(page, frames: list[str]) -> None:
    """The loader's light socket is up (hello) and the panel is not loaded."""
    wait_for_frame(page, frames, '"hello"')
    assert page.evaluate("typeof window.SupportChatPanel") == "undefined"


def closed_page(new_context, make_user, live_url, block_bootstrap: bool = False):
    """A customer with a conversation on a page where only the loader listens (the panel
    is closed and not loaded), and staff in that conversation: (page, staff, staff user)."""
    user, staff_user = make_user("casey"), staff_member(make_user)
    conversation = start_conversation(user, staff_user)
    page = new_context(user, viewport=DESKTOP).new_page()
    if block_bootstrap:
        page.route("**/bootstrap.min.css", lambda route: route.abort())
    frames = received_frames(page)
    page.goto("/")
    loader_listening(page, frames)
    return page, StaffSocket(live_url, staff_user, conversation.pk), staff_user


def overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def assert_beside_the_launcher(page, viewport: dict) -> None:
    """The toast is in the viewport and leaves the launcher (and its click target) free."""
    toast = page.locator(TOAST).bounding_box()
    launcher = page.locator(".support-chat-launcher").bounding_box()
    assert toast is not None and launcher is not None
    assert not overlaps(toast, launcher), (toast, launcher)
    assert toast["x"] >= 0 and toast["y"] >= 0
    assert toast["x"] + toast["width"] <= viewport["width"]
    assert toast["y"] + toast["height"] <= viewport["height"]
    # What a click on the launcher's centre hits is the launcher.
    hit = page.evaluate(
        """([x, y]) => !!document.elementFromPoint(x, y).closest('.support-chat-launcher')""",
        [launcher["x"] + launcher["width"] / 2, launcher["y"] + launcher["height"] / 2],
    )
    assert hit


# -- toasts ---------------------------------------------------------------------------


def test_toast_for_a_staff_reply_while_closed_shows_name_and_snippet_as_text(
    new_context, make_user, live_url
):
    page, staff, staff_user = closed_page(new_context, make_user, live_url)
    errors = watch_page(page)
    expect(page.locator(TOAST)).to_have_count(0)
    text = (
        "<script>window.__xss=1</script><img src=x onerror=window.__xss=2> "
        "Your export is fixed, you can download it from the reports page now. Anything else?"
    )
    staff.reply(text)
    toast = page.locator(TOAST)
    expect(toast).to_be_visible()
    expect(toast).to_have_class(re.compile(r"\btoast\b"))  # the host's Bootstrap toast
    name = names.staff_name(staff_user)
    assert name == "Sam Lee"
    expect(toast.locator(".scw-toast-name")).to_have_text(f"New reply from {name}")
    # About 80 characters of the text, as text: markup is shown, never parsed.
    snippet = text[:79] + "…"
    expect(toast.locator(".scw-toast-text")).to_have_text(snippet)
    assert toast.locator("script, img").count() == 0
    assert "sam.lee" not in toast.inner_text()  # no login, no email
    # Announced once, as text, by the widget's one polite live region (the panel's).
    live = page.locator("#support-chat [aria-live=polite]")
    expect(live).to_have_count(1)
    expect(live).to_have_text(f"New reply from {name}: {snippet}")
    assert live.locator("script, img, svg").count() == 0
    expect(page.locator(".support-chat-badge")).to_have_text("1 new")
    expect(page.locator(".scw-panel")).to_be_hidden()
    assert_beside_the_launcher(page, DESKTOP)

    # A click opens the panel with the message; the toast goes.
    toast.locator(".scw-toast-open").click()
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text(text)
    expect(toast).to_be_hidden()
    page.wait_for_function("document.activeElement?.classList.contains('scw-input')")
    expect(page.locator(".support-chat-badge")).to_be_hidden()  # read: it is in view
    assert page.evaluate("window.__xss") is None
    assert errors == []
    staff.close()


def open_chat(new_context, make_user, live_url, text: str):
    """The customer opens the widget and writes; staff is in the conversation."""
    user, staff_user = make_user("casey"), staff_member(make_user)
    page = new_context(user, viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    send_from_widget(page, text)
    wait_connected(page)
    expect(page.locator(".scw-own.scw-item[data-id]")).to_have_count(1)  # stored
    return page, StaffSocket(live_url, staff_user, customer_conversation(user).pk)


def test_toast_while_minimized_opens_with_enter(new_context, make_user, live_url):
    page, staff = open_chat(new_context, make_user, live_url, "Is my order shipped?")
    page.get_by_role("button", name="Minimize chat").click()
    expect(page.locator(".scw-panel")).to_be_hidden()
    expect(page.locator(".support-chat-launcher")).to_be_focused()

    staff.reply("It left the warehouse this morning.")
    toast = page.locator(TOAST)
    expect(toast.locator(".scw-toast-text")).to_have_text("It left the warehouse this morning.")
    expect(page.locator(".scw-input")).to_be_hidden()  # minimized: no composer to cover
    assert_beside_the_launcher(page, DESKTOP)
    # Keyboard: Tab from the launcher reaches the toast; Enter opens the panel.
    page.keyboard.press("Tab")
    expect(toast.locator(".scw-toast-open")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()
    expect(toast).to_be_hidden()
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text(
        "It left the warehouse this morning."
    )
    expect(page.locator(".scw-input")).to_be_focused()
    staff.close()


def test_no_toast_while_the_panel_is_open(new_context, make_user, live_url):
    page, staff = open_chat(new_context, make_user, live_url, "Hello")
    staff.reply("Hi, how can I help?")
    # The toast would be shown by the same frame that renders the message.
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text("Hi, how can I help?")
    expect(page.locator(TOAST)).to_be_hidden()
    # Announced as a message, not as a toast.
    expect(page.locator("#support-chat [aria-live=polite]")).to_have_text(
        "Sam Lee: Hi, how can I help?"
    )
    staff.close()


def test_dismiss_hides_it_for_good_and_returns_the_focus(new_context, make_user, live_url):
    page, staff, _ = closed_page(new_context, make_user, live_url)
    staff.reply("First reply")
    toast = page.locator(TOAST)
    expect(toast).to_be_visible()
    dismiss = toast.get_by_role("button", name="Dismiss")
    expect(dismiss).to_have_attribute("title", "Dismiss")
    dismiss.focus()
    dismiss.press("Enter")
    expect(toast).to_be_hidden()
    expect(page.locator(".support-chat-launcher")).to_be_focused()  # not lost to <body>
    expect(page.locator(".scw-panel")).to_be_hidden()  # dismissing opens nothing
    expect(page.locator(".support-chat-badge")).to_have_text("1 new")  # still unread

    # The panel (loaded by that reply) has its own socket now: the next reply comes
    # through it, a new toast, dismissed with Escape.
    wait_connected(page)
    staff.reply("Second reply")
    expect(toast.locator(".scw-toast-text")).to_have_text("Second reply")
    toast.locator(".scw-toast-open").focus()
    page.keyboard.press("Escape")
    expect(toast).to_be_hidden()
    expect(page.locator(".scw-panel")).to_be_hidden()

    # Dismissed stays dismissed: a reload or another page shows the badge, no toast.
    page.reload()
    page.wait_for_function("typeof window.SupportChatPanel === 'function'")  # unread: loaded
    wait_connected(page)
    expect(page.locator(".support-chat-badge")).to_have_text("2 new")
    expect(toast).to_be_hidden()
    page.goto("/pricing/")
    wait_connected(page)
    expect(toast).to_be_hidden()
    staff.close()


def test_it_hides_itself_but_not_while_hovered(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), staff_member(make_user)
    conversation = start_conversation(user, staff_user)
    page = new_context(user, viewport=DESKTOP).new_page()
    page.goto("/")
    page.locator(".support-chat-launcher").hover()  # loads the panel (and its socket)
    wait_connected(page)
    page.mouse.move(10, 10)
    staff = StaffSocket(live_url, staff_user, conversation.pk)
    staff.reply("Still there?")
    toast = page.locator(TOAST)
    expect(toast).to_be_visible()
    toast.hover()
    page.wait_for_timeout((TOAST_TIME + 1) * 1000)
    expect(toast).to_be_visible()  # the pointer holds it
    page.mouse.move(10, 10)
    left = time.monotonic()
    expect(toast).to_be_hidden(timeout=(TOAST_TIME + 4) * 1000)
    assert time.monotonic() - left > TOAST_TIME - 1.5
    expect(page.locator(".scw-panel")).to_be_hidden()
    staff.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_never_over_the_launcher_or_the_composer(new_context, make_user, live_url, viewport):
    user, staff_user = make_user("casey"), staff_member(make_user)
    conversation = start_conversation(user, staff_user)
    page = new_context(user, viewport=viewport).new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    page.get_by_role("button", name="Minimize chat").click()
    expect(page.locator(".scw-panel")).to_be_hidden()
    staff = StaffSocket(live_url, staff_user, conversation.pk)
    staff.reply("A long reply to make the toast as tall as it gets: " + "lorem ipsum " * 20)
    toast = page.locator(TOAST)
    expect(toast).to_be_visible()
    assert_beside_the_launcher(page, viewport)
    expect(page.locator(".scw-input")).to_be_hidden()
    box = toast.bounding_box()
    assert box["height"] < 120  # two lines of snippet at most
    # The launcher, clicked while the toast shows, opens the panel; the toast goes, so
    # nothing covers the composer.
    page.locator(".support-chat-launcher").click()
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()
    expect(toast).to_be_hidden()
    composer = page.locator(".scw-composer").bounding_box()
    hit = page.evaluate(
        """([x, y]) => !!document.elementFromPoint(x, y).closest('.scw-composer')""",
        [composer["x"] + composer["width"] / 2, composer["y"] + composer["height"] / 2],
    )
    assert hit
    # A reply while it is open: still no toast over it.
    staff.reply("One more")
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text("One more")
    expect(toast).to_be_hidden()
    staff.close()


def test_no_toast_for_own_messages_from_another_tab(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), staff_member(make_user)
    conversation = start_conversation(user, staff_user)
    context = new_context(user, viewport=DESKTOP)
    page = context.new_page()
    frames = received_frames(page)
    page.goto("/")
    loader_listening(page, frames)
    other = context.new_page()
    other.goto("/")
    open_widget(other)
    wait_connected(other)

    # Only the loader's socket in this tab: it sees the message, shows no toast.
    send_from_widget(other, "Sent from my other tab")
    wait_for_frame(page, frames, '"message:new"', "Sent from my other tab")
    expect(page.locator(TOAST)).to_have_count(0)
    # The panel loaded (closed) with its own socket: still no toast for our messages.
    page.locator(".support-chat-launcher").hover()
    wait_connected(page)
    page.mouse.move(10, 10)
    send_from_widget(other, "And another one")
    wait_for_frame(page, frames, '"message:new"', "And another one")
    expect(page.locator(TOAST)).to_be_hidden()
    # A staff reply does show one here (and not in the tab where the panel is open).
    staff = StaffSocket(live_url, staff_user, conversation.pk)
    staff.reply("Got both of them")
    expect(page.locator(TOAST).locator(".scw-toast-text")).to_have_text("Got both of them")
    expect(other.locator(".scw-theirs .scw-text").last).to_have_text("Got both of them")
    expect(other.locator(TOAST)).to_be_hidden()
    staff.close()


def test_looks_like_a_toast_without_bootstraps_css(new_context, make_user, live_url):
    page, staff, _ = closed_page(new_context, make_user, live_url, block_bootstrap=True)
    assert page.evaluate("getComputedStyle(document.body).getPropertyValue('--bs-body-bg')") == ""
    staff.reply("Styled by the widget itself")
    toast = page.locator(TOAST)
    expect(toast).to_be_visible()
    style = toast.evaluate(
        """el => { const s = getComputedStyle(el); return {
            position: s.position, background: s.backgroundColor, radius: s.borderTopLeftRadius,
            border: s.borderTopWidth + ' ' + s.borderTopStyle, shadow: s.boxShadow,
            fontSize: s.fontSize, width: el.getBoundingClientRect().width}; }"""
    )
    assert style == {
        "position": "fixed",
        "background": "rgb(255, 255, 255)",
        "radius": "6px",
        "border": "1px solid",
        "shadow": "rgba(0, 0, 0, 0.15) 0px 8px 16px 0px",
        "fontSize": "14px",
        "width": 300,
    }
    # The buttons are bare: no grey browser button inside the toast.
    button_background = toast.locator(".scw-toast-open").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert button_background == "rgba(0, 0, 0, 0)"
    assert_beside_the_launcher(page, DESKTOP)
    staff.close()


def test_toast_has_no_accessibility_violations(new_context, make_user, live_url, axe_script):  # noqa: F811
    page, staff, _ = closed_page(new_context, make_user, live_url)
    staff.reply("Checked by axe")
    expect(page.locator(TOAST)).to_be_visible()
    page.wait_for_function("document.querySelector('.scw-toast').getAnimations().length === 0")
    assert axe_violations(page, axe_script) == []
    staff.close()


@pytest.mark.parametrize("device", ["desktop", "mobile"])
def test_toast_screenshots(device, new_context, make_user, live_url, shots_dir):  # noqa: F811
    """docs/screenshots/widget-<device>-toast.png (UPDATE_SCREENSHOTS=1 writes them)."""
    viewport = DESKTOP if device == "desktop" else PHONE
    user = make_user(f"casey_{device}", first_name="Casey")
    staff_user = make_user(f"sam_{device}", first_name="Sam", last_name="Rivera", is_staff=True)
    conversation = start_conversation(user, staff_user)
    page = new_context(user, viewport=viewport).new_page()
    frames = received_frames(page)
    page.goto("/")
    loader_listening(page, frames)
    staff = StaffSocket(live_url, staff_user, conversation.pk)
    staff.reply("Found it: the export was waiting for a permission. It is in your inbox now.")
    expect(page.locator(TOAST)).to_be_visible()
    page.mouse.move(10, 10)
    page.screenshot(path=str(shots_dir / f"widget-{device}-toast.png"))
    staff.close()


# -- the email link --------------------------------------------------------------------


def test_the_email_link_opens_the_panel_once(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), staff_member(make_user)
    start_conversation(user, staff_user, "Your export is ready")
    page = new_context(user, viewport=DESKTOP).new_page()
    errors = watch_page(page)
    page.goto("/")
    entries = page.evaluate("history.length")
    page.goto("/pricing/?ref=email#support-chat")
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()
    expect(page.locator(".scw-theirs .scw-text").last).to_have_text("Your export is ready")
    expect(page.locator(".scw-input")).to_be_focused()
    expect(page.locator(TOAST)).to_be_hidden()
    # The fragment is gone (query kept), without a new history entry.
    assert page.url == live_url + "/pricing/?ref=email"
    assert page.evaluate("history.length") == entries + 1
    expect(page.locator(".support-chat-badge")).to_be_hidden()  # read
    # Closed, a reload stays closed: the link opened it once.
    page.get_by_role("button", name="Close chat").click()
    expect(page.locator(".scw-panel")).to_be_hidden()
    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.evaluate("typeof window.SupportChatPanel") == "undefined"  # not even loaded
    expect(page.locator(".scw-panel")).to_have_count(0)
    assert errors == []


def test_the_email_link_for_someone_who_never_wrote(new_context, make_user, live_url):
    page = new_context(make_user("casey"), viewport=PHONE).new_page()
    page.goto("/#support-chat")
    expect(page.locator(".scw-panel.scw-in")).to_be_visible()
    expect(page.locator(".scw-empty")).to_be_visible()
    assert page.url == live_url + "/"
