"""Accessibility of the widget: axe-core finds nothing, keyboard-only use works, focus is
managed and visible, incoming messages are announced.

axe-core comes from the npm registry: the test installs it into tests/e2e/node_modules
(git-ignored) when it is missing, and fails with the reason if npm cannot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

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

AXE_VERSION = "4.14.1"
NODE_DIR = Path(__file__).resolve().parent
AXE = NODE_DIR / "node_modules/axe-core/axe.min.js"
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def axe_script() -> Path:
    package = AXE.parent / "package.json"
    if package.is_file() and json.loads(package.read_text())["version"] == AXE_VERSION:
        return AXE
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "npm is needed to install axe-core for the accessibility tests (apt-get install -y npm)."
        )
    result = subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(NODE_DIR),
            f"axe-core@{AXE_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 or not AXE.is_file():
        pytest.fail(f"npm install axe-core@{AXE_VERSION} failed:\n{result.stdout}\n{result.stderr}")
    return AXE


def axe_violations(page, axe_script: Path) -> list[str]:
    """Run axe-core (every rule, best practices included) on the widget's element."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe_script))
    results = page.evaluate(
        "async () => (await axe.run(document.getElementById('support-chat'),"
        " {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> "
        + "; ".join(node["target"][0] + " " + node["failureSummary"] for node in v["nodes"])
        for v in results
    ]


def test_axe_finds_no_violations_in_any_state(new_context, make_user, live_url, axe_script):
    user, staff_user = make_user("casey"), make_user("sam", first_name="Sam", is_staff=True)
    conversation = start_conversation(
        user,
        staff_user,
        *[f"Reply number {i} with a link https://example.com/{i}" for i in range(30)],
    )
    context = new_context(user, viewport=DESKTOP)
    gate = SocketGate(context)
    page = context.new_page()
    page.goto("/")
    checked = {}
    checked["closed, with unread badge"] = axe_violations(page, axe_script)

    open_widget(page)
    wait_connected(page)
    staff = StaffSocket(live_url, staff_user, conversation.pk, pump=page)
    send_from_widget(page, "Thanks! One more question.")
    staff.wait_for("message:new")
    staff.send("message:read", {})
    expect(page.locator(".scw-own .scw-status").last).to_have_class(re.compile("scw-status-read"))
    staff.send("typing:start")
    expect(page.locator(".scw-typing")).to_be_visible()
    page.locator(".scw-log").evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(200)
    staff.reply("A reply while you scroll")
    expect(page.locator(".scw-new")).to_be_visible()
    checked["open, history, receipts, typing, new badge"] = axe_violations(page, axe_script)

    gate.drop_from_page = lambda frame: frame["type"] == "message:send"
    gate.drop_from_server = lambda frame: False
    page.locator(".scw-new").click()
    send_from_widget(page, "This one stays pending")
    expect(page.locator(".scw-pending .scw-sending")).to_have_count(1)
    context.set_offline(True)
    expect(page.locator(".scw-offline")).to_be_visible()
    checked["offline banner, sending"] = axe_violations(page, axe_script)
    context.set_offline(False)
    wait_connected(page)

    gate.drop_from_page = lambda frame: False
    send_from_widget(page, "bad \x07 text")
    expect(page.locator(".scw-pending .scw-failed")).to_have_count(1)
    checked["failed message"] = axe_violations(page, axe_script)
    staff.close()

    empty = new_context(make_user("emma"), viewport={"width": 390, "height": 844}).new_page()
    empty.goto("/")
    open_widget(empty)
    expect(empty.locator(".scw-empty")).to_be_visible()
    checked["mobile, empty"] = axe_violations(empty, axe_script)

    assert {state: found for state, found in checked.items() if found} == {}


def test_keyboard_only_use_and_focus_management(new_context, make_user, live_url):
    page = new_context(make_user("casey"), viewport=DESKTOP).new_page()
    page.goto("/")
    launcher = page.locator(".support-chat-launcher")
    # Reach the launcher with Tab (it is the last control of the page).
    for _ in range(30):
        page.keyboard.press("Tab")
        if launcher.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("the launcher is not reachable with Tab")
    expect(launcher).to_have_accessible_name(re.compile("^Chat with support"))
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(page.locator(".support-chat-tooltip")).to_have_css("opacity", re.compile(r"0\.9"))
    page.keyboard.press("Enter")

    dialog = page.get_by_role("dialog", name="Support")
    expect(dialog).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(launcher).to_have_attribute("aria-controls", "support-chat-panel")
    textarea = page.get_by_role("textbox", name="Type your message…")
    expect(textarea).to_be_focused()  # focus moves into the panel

    # Tab order: launcher -> minimize -> close -> message log -> textarea -> send.
    def focused():
        return page.evaluate(
            "(() => { const el = document.activeElement;"
            " return el.getAttribute('aria-label') || el.className; })()"
        )

    order = []
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
        order.append(focused())
    assert order == ["Messages", "Close chat", "Minimize chat", order[3]]
    assert "support-chat-launcher" in order[3]
    for _ in range(4):
        page.keyboard.press("Tab")
    expect(textarea).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()

    # Keyboard focus is visible on every control of the panel.
    for name in ("Minimize chat", "Close chat", "Send"):
        control = page.get_by_role("button", name=name, exact=True)
        control.focus()
        page.keyboard.press("Shift")  # keyboard modality, so :focus-visible applies
        assert control.evaluate("el => el.matches(':focus-visible')")
        ring = control.evaluate(
            "el => getComputedStyle(el).boxShadow + getComputedStyle(el).outlineStyle"
        )
        assert ring not in ("nonenone", "none"), name
    log = page.get_by_role("log", name="Messages")
    log.focus()
    page.keyboard.press("Shift")
    assert log.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"

    # Esc closes and gives the focus back to the launcher.
    textarea.focus()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    # Space reopens; Minimize also returns the focus.
    page.keyboard.press("Space")
    expect(textarea).to_be_focused()
    page.get_by_role("button", name="Minimize chat").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()


def test_incoming_messages_are_announced(new_context, make_user, live_url):
    user, staff_user = make_user("casey"), make_user("sam", first_name="Sam", is_staff=True)
    page = new_context(user, viewport=DESKTOP).new_page()
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    live = page.locator("#support-chat [aria-live=polite]")
    expect(live).to_have_count(1)
    # The log itself does not re-announce (the window re-renders while scrolling).
    expect(page.get_by_role("log")).to_have_attribute("aria-live", "off")
    staff = StaffSocket(live_url, staff_user, customer_conversation(user).pk)
    staff.reply("We are on it.")
    expect(live).to_have_text("Sam: We are on it.")
    # Own messages are not announced back.
    send_from_widget(page, "Thanks")
    staff.wait_for("message:new")
    page.wait_for_timeout(300)
    expect(live).to_have_text("Sam: We are on it.")
    # Every bubble says who wrote it, for screen readers.
    expect(page.locator(".scw-own .scw-bubble .visually-hidden").first).to_have_text("You: ")
    expect(page.locator(".scw-theirs .scw-bubble .visually-hidden").first).to_have_text("Sam: ")
    staff.close()
