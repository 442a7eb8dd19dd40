"""Icons without Font Awesome: the example site links Font Awesome in its layouts; here the
browser refuses that stylesheet (and its fonts), as on a host that has none. The widget's
launcher, minimize, close and send buttons and the inbox's icons must still be drawn: the
package's own inline SVGs (icons.py), with a real shape, not an empty box."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .inbox_helpers import Customer, open_inbox, wait_chat_connected, watch_errors
from .widget_helpers import (
    no_server_errors,  # noqa: F401 (a fixture)
    open_widget,
    send_from_widget,
    wait_connected,
    watch_page,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_server_errors"),
]

DESKTOP = {"width": 1280, "height": 800}
FONT_AWESOME = "**/fontawesomefree/**"

# What a Font Awesome icon would draw here: "none" when its stylesheet is not on the page.
FONT_AWESOME_GLYPH = """() => {
  const probe = document.createElement("i");
  probe.className = "fas fa-solid fa-comments";
  document.body.append(probe);
  const content = getComputedStyle(probe, "::before").content;
  probe.remove();
  return content;
}"""

# The first visible package icon inside an element: its box, its shape's box, its colour.
ICON = """(el) => {
  const svg = [...el.querySelectorAll("svg.sc-icon")].find((s) => s.getClientRects().length);
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  const shape = svg.querySelector("path").getBoundingClientRect();
  const host = el.getBoundingClientRect();
  return {
    box: [box.width, box.height],
    shape: [shape.width, shape.height],
    centre: [
      box.x + box.width / 2 - (host.x + host.width / 2),
      box.y + box.height / 2 - (host.y + host.height / 2),
    ],
    fill: getComputedStyle(svg.querySelector("path")).fill,
    background: getComputedStyle(el).backgroundColor,
  };
}"""


def without_font_awesome(context) -> list[str]:
    """Refuse the site's Font Awesome files; returns the URLs refused."""
    refused: list[str] = []

    def abort(route):
        refused.append(route.request.url)
        route.abort()

    context.route(FONT_AWESOME, abort)
    return refused


def assert_icon(locator, what: str) -> dict:
    info = locator.evaluate(ICON)
    assert info is not None, f"{what}: no visible svg icon"
    assert min(info["box"]) > 0, (what, info)
    assert min(info["shape"]) > 0, (what, info)  # the path has data: a shape is drawn
    assert info["fill"] not in ("none", "rgba(0, 0, 0, 0)"), (what, info)
    return info


def test_widget_icons_without_font_awesome(new_context, make_user):
    context = new_context(make_user("casey"), viewport=DESKTOP)
    refused = without_font_awesome(context)
    page = context.new_page()
    errors = watch_page(page)
    page.goto("/")
    assert refused, "the example layout links Font Awesome: the route must have refused it"
    assert page.evaluate(FONT_AWESOME_GLYPH) in ("none", "normal")

    # The launcher: server-rendered inline SVG, white on the primary colour, centred.
    launcher = page.locator(".support-chat-launcher")
    info = assert_icon(launcher, "launcher")
    assert info["box"] == [22, 22]  # 1em of the launcher's 1.375rem
    assert info["fill"] == "rgb(255, 255, 255)" and info["fill"] != info["background"]
    assert abs(info["centre"][0]) <= 1 and abs(info["centre"][1]) <= 1.5, info

    open_widget(page)
    wait_connected(page)
    assert_icon(page.get_by_role("button", name="Minimize chat"), "minimize")
    assert_icon(page.get_by_role("button", name="Close chat"), "close")
    assert_icon(page.locator(".scw-send"), "send")

    # Icons drawn later by the panel (the receipt of a sent message) too.
    send_from_widget(page, "Hello without icon fonts")
    status = page.locator(".scw-item .scw-status-sent").first
    expect(status).to_be_visible()
    assert_icon(status, "sent receipt")
    assert errors == []


def test_inbox_icons_without_font_awesome(new_context, make_user):
    staff = make_user("sam", last_name="Support", is_staff=True)
    customer = Customer(new_context(make_user("casey", email="casey@example.com")).new_page())
    conversation_id = customer.start_conversation()
    customer.connect()
    customer.send("Where is my invoice?")

    context = new_context(staff, viewport=DESKTOP)
    refused = without_font_awesome(context)
    inbox = context.new_page()
    errors = watch_errors(inbox)
    open_inbox(inbox, f"/admin/chat/{conversation_id}/")
    wait_chat_connected(inbox)
    assert refused, "the example dashboard links Font Awesome: the route must have refused it"
    assert inbox.evaluate(FONT_AWESOME_GLYPH) in ("none", "normal")

    assert_icon(inbox.locator("#sc-search .input-group-text"), "search")
    assert_icon(inbox.locator("#sc-composer button[type=submit]"), "send")
    assert_icon(inbox.locator("#sc-help-button"), "keyboard")
    assert_icon(inbox.locator("#sc-close-pane"), "close the conversation")
    assert_icon(inbox.locator("#sc-assign-toggle"), "assignee")

    # A reply, then the customer reads it: inbox.js redraws the receipt with the icon it
    # clones from the page's <template id="sc-icons">.
    reply = inbox.locator("#sc-reply")
    reply.fill("Here it is")
    reply.press("Enter")
    received = customer.wait_for("message:new", "d.message.sender_side === 'staff'")
    receipt = inbox.locator(f"#sc-msg-{received['message']['id']} .sc-receipt")
    expect(receipt).to_have_attribute("data-status", "sent")
    assert_icon(receipt, "sent receipt")
    customer.frame({"up_to_id": received["message"]["id"]}, "message:read")
    expect(receipt).to_have_attribute("data-status", "read")
    assert receipt.locator("svg.sc-icon").count() == 1
    assert_icon(receipt, "read receipt (cloned by inbox.js)")
    assert errors == [], errors
