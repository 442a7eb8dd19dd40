"""The foreign host in headless Chromium: uvicorn with DEBUG off and collected static files
(whitenoise), Bootstrap 5 and no Font Awesome. A customer chats from the widget; staff
answer from the inbox inside the host's back office (``/backoffice/support/``).

Runs in a pytest process of its own (``-m browser``): Playwright's sync API keeps an event
loop in the main thread, which would break the asyncio tests that run after it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import Page, expect

from .conftest import session_cookie
from .helpers import INBOX, TEAM_NAME, leaks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# The boxes of a control's icons: svg, <i>, <img> or anything with "icon" in its class,
# outside screen-reader-only text and the unread badge.
ICON_BOXES = """
(el) => Array.from(el.querySelectorAll("svg, i, img, [class*='icon']"))
  .filter((icon) => !icon.closest(".visually-hidden, .support-chat-badge"))
  .map((icon) => {
    const r = icon.getBoundingClientRect();
    return {tag: icon.tagName, cls: String(icon.getAttribute("class")), w: r.width, h: r.height};
  })
"""
# Whether the element at the centre of ``el`` is ``el`` or inside it (nothing covers it).
NOT_COVERED = """
(el) => {
  const r = el.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return top === el || el.contains(top) ? "" : (top ? top.outerHTML.slice(0, 200) : "nothing");
}
"""


# Fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API runs an event loop in this thread; the tests' ORM calls are
    still plain synchronous code, so Django's async-safety guard does not apply. Only in
    this process (-m browser) and only once the browser is asked for."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="session")
def browser(_orm_beside_playwright: None) -> Iterator[Any]:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(path):
        pytest.fail(f"Chromium not found at {path}: install it (apt-get install -y chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser: Any, host_server: Any) -> Iterator[Callable[..., Any]]:
    """``new_context(user=None, **options)``: a browser context on the host, signed in as
    ``user`` with a real session cookie."""
    contexts = []

    def make(user: Any = None, **options: Any) -> Any:
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(base_url=host_server.base, **options)
        if user is not None:
            cookie = {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": session_cookie(user),
                "url": host_server.base,
            }
            context.add_cookies([cookie])
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def watch(page: Page) -> list[str]:
    """The page's script errors, console errors and failed responses."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    # Failed loads are reported by the response handler, with their URL (the browser's own
    # favicon probe aside).
    page.on(
        "console",
        lambda m: (
            errors.append(f"console: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return errors


# Helpers ----------------------------------------------------------------------------------


def open_widget(page: Page) -> None:
    page.locator(".support-chat-launcher").click()
    page.locator(".scw-panel.scw-in").wait_for(state="visible")
    page.wait_for_function("document.querySelector('.scw-panel').getAnimations().length === 0")
    page.locator("#support-chat[data-connection=open]").wait_for(state="attached", timeout=10_000)


def open_inbox(page: Page, path: str = INBOX) -> None:
    page.goto(path)
    expect(page.locator("#sc-live")).to_have_attribute("data-live", "on", timeout=10_000)


def frames_seen(page: Page) -> list[dict[str, Any]]:
    """Every frame the page's sockets receive from now on (the list grows)."""
    frames: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", on_socket)
    return frames


def wait_caught_up(page: Page, frames: list[dict[str, Any]]) -> None:
    """Until the open conversation's socket said hello and answered the page's catch-up
    ``sync``: the server is done with the page's requests before the test ends."""
    expect(page.locator(".sc-conversation")).to_have_attribute("data-live", "on", timeout=10_000)
    for _ in range(100):
        if any(frame.get("type") == "sync" for frame in frames):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"no sync answer; frames: {[f.get('type') for f in frames]}")


def customer_writes(context: Any, text: str) -> int:
    """The customer's conversation id, after they sent ``text`` through the REST API."""
    page = context.new_page()
    page.goto("/")  # sets the CSRF cookie
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    listing = context.request.get("/api/chat/conversations/")
    assert listing.ok, listing.text()
    conversation_id = listing.json()["results"][0]["id"]
    sent = context.request.post(
        f"/api/chat/conversations/{conversation_id}/messages/",
        data=json.dumps({"text": text, "client_id": str(uuid.uuid4())}),
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert sent.status == 201, sent.text()
    page.close()
    return conversation_id


def visible_icons(page: Page, selector: str) -> list[dict[str, Any]]:
    boxes = page.locator(selector).evaluate(ICON_BOXES)
    return [box for box in boxes if box["w"] > 0 and box["h"] > 0]


def font_awesome_loaded(page: Page) -> list[str]:
    return page.evaluate(
        """() => [...document.styleSheets].map((s) => s.href || "")
             .concat([...document.fonts].map((f) => f.family))
             .filter((name) => /awesome|fontawesome/i.test(name))"""
    )


# Tests ------------------------------------------------------------------------------------


def test_customer_and_staff_chat_live(new_context, customer, staff):
    inbox = new_context(staff).new_page()
    inbox_errors = watch(inbox)
    open_inbox(inbox)

    page = new_context(customer).new_page()
    errors = watch(page)
    page.goto("/")
    open_widget(page)
    page.locator(".scw-input").fill("Hello from the foreign host")
    page.locator(".scw-input").press("Enter")
    expect(page.locator(".scw-own .scw-text").last).to_have_text("Hello from the foreign host")

    # Staff see it arrive live, open it and reply.
    the_row = inbox.locator(".sc-row", has_text="Hello from the foreign host")
    expect(the_row).to_be_visible(timeout=10_000)
    the_row.locator(".sc-row-link").click()
    expect(inbox).to_have_url(re.compile(r"/backoffice/support/\d+/$"))
    expect(inbox.locator("#sc-participant-name")).to_have_text("Alice Archer")
    expect(inbox.locator(".sc-conversation")).to_have_attribute("data-live", "on", timeout=10_000)
    reply = inbox.locator("#sc-reply")
    reply.fill("Hi Alice, we are on it.")
    reply.press("Enter")

    # The customer sees the reply live, from the team, never from the staff's email.
    theirs = page.locator(".scw-theirs").last
    expect(theirs.locator(".scw-text")).to_have_text("Hi Alice, we are on it.", timeout=10_000)
    expect(page.locator(".scw-name").last).to_have_text(TEAM_NAME)
    assert leaks(page.content()) == []
    assert errors == []
    assert inbox_errors == []


def test_widget_icons_are_visible_without_font_awesome(new_context, customer):
    page = new_context(customer).new_page()
    errors = watch(page)
    page.goto("/")
    assert font_awesome_loaded(page) == []
    launcher = visible_icons(page, ".support-chat-launcher")
    assert launcher, page.locator(".support-chat-launcher").evaluate(ICON_BOXES)

    open_widget(page)
    for name, selector in [
        ("minimize", ".scw-panel button[aria-label='Minimize chat']"),
        ("close", ".scw-panel button[aria-label='Close chat']"),
        ("send", ".scw-panel .scw-send"),
    ]:
        expect(page.locator(selector)).to_be_visible()
        icons = visible_icons(page, selector)
        assert icons, (name, page.locator(selector).evaluate(ICON_BOXES))
    assert font_awesome_loaded(page) == []
    assert errors == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_launcher_over_the_inboxs_send_button(new_context, customer, staff, viewport):
    conversation_id = customer_writes(new_context(customer), "Is anyone there?")
    page = new_context(staff, viewport=viewport).new_page()
    errors = watch(page)
    frames = frames_seen(page)
    open_inbox(page, f"{INBOX}{conversation_id}/")
    wait_caught_up(page, frames)
    send = page.locator("#sc-composer button[type=submit]")
    expect(send).to_be_visible()
    expect(page.locator(".support-chat-launcher")).to_have_count(0)
    send.scroll_into_view_if_needed()
    assert send.evaluate(NOT_COVERED) == ""
    assert errors == []


def test_inbox_search_by_email_and_by_message_text(new_context, customer, nameless_customer, staff):
    alice = customer_writes(new_context(customer), "My invoice 4711 is wrong")
    bob = customer_writes(new_context(nameless_customer), "Where is my parcel?")
    page = new_context(staff).new_page()
    errors = watch(page)
    open_inbox(page)
    expect(page.locator(f"#sc-row-{alice}")).to_be_visible()
    expect(page.locator(f"#sc-row-{bob}")).to_be_visible()

    search = page.locator("#sc-q")
    for query, shown, hidden in [
        ("bob.baker@customers.example", bob, alice),
        ("invoice", alice, bob),
        ("alice@customers", alice, bob),
        ("parcel", bob, alice),
    ]:
        search.fill(query)
        expect(page.locator(f"#sc-row-{shown}")).to_be_visible()
        expect(page.locator(f"#sc-row-{hidden}")).to_have_count(0)
    search.fill("")
    expect(page.locator(f"#sc-row-{alice}")).to_be_visible()
    expect(page.locator(f"#sc-row-{bob}")).to_be_visible()
    assert errors == []
