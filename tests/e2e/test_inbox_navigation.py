"""The staff inbox end to end: access, state in the URL (filters, search, open conversation,
back button), keyboard shortcuts, bulk actions, "Load more", the phone layout, screenshots.

Screenshots for the docs: ``UPDATE_SCREENSHOTS=1 pytest tests/e2e/test_inbox_navigation.py``
writes ``docs/screenshots/inbox-*.png``; without it they go to a temporary directory.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from django_support_chat import services
from django_support_chat.models import AuditEntry, Conversation

from .inbox_helpers import Customer, open_inbox, row, wait_chat_connected, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(autouse=True)
def _no_events_from_the_test_process(settings):
    settings.CHANNEL_LAYERS = {}


@pytest.fixture
def staff(make_user):
    return make_user("sam", last_name="Support", is_staff=True, email="sam@acme.test")


def conversation_with(user, *texts, staff=None, minutes_ago=0):
    conversation, _ = services.get_or_start_conversation(user)
    for text in texts:
        services.send_message(conversation, user, text, uuid.uuid4())
    if staff is not None:
        services.send_message(conversation, staff, "Thanks, we are on it.", uuid.uuid4())
    if minutes_ago:
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
    return conversation


@pytest.fixture
def three(make_user, staff):
    """Three conversations, newest first: unread+open, read+closed, unread+assigned to Sam."""
    alice = make_user("alice", last_name="Archer", email="alice@example.com")
    bob = make_user("bob", last_name="Baker", email="bob@corp.test")
    carol = make_user("carol", last_name="Cole", email="carol@example.com")
    first = conversation_with(alice, "My invoice is wrong")
    second = conversation_with(bob, "Password reset please", staff=staff, minutes_ago=5)
    services.close(Conversation.objects.get(pk=second.pk), staff)
    third = conversation_with(carol, "Where is my parcel?", minutes_ago=10)
    services.assign(Conversation.objects.get(pk=third.pk), staff, staff)
    return first, second, third


def listed(page):
    return [
        int(el.get_attribute("data-conversation-id"))
        for el in page.locator("#sc-list .sc-row").all()
    ]


def test_access_anonymous_goes_to_login_customers_get_403(new_context, make_user, live_url):
    anonymous = new_context().new_page()
    anonymous.goto("/admin/chat/")
    expect(anonymous).to_have_url(re.compile(r"/login/\?next=/admin/chat/$"))
    customer = new_context(make_user("casey")).new_page()
    response = customer.goto("/admin/chat/")
    assert response.status == 403


def test_filters_search_and_open_conversation_live_in_the_url(new_context, staff, three):
    first, second, third = three
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page)
    filters = page.locator("#sc-filters")
    expect(filters.locator("a.active")).to_have_text("All")
    assert listed(page) == [first.pk, second.pk, third.pk]

    filters.get_by_role("link", name="Unread").click()
    expect(page).to_have_url(re.compile(r"/admin/chat/\?filter=unread$"))
    expect(filters.locator("a.active")).to_have_text("Unread")
    expect(page.locator("#sc-list .sc-row")).to_have_count(2)
    assert listed(page) == [first.pk, third.pk]

    filters.get_by_role("link", name="Open").click()
    expect(page).to_have_url(re.compile(r"\?filter=open$"))
    expect(page.locator("#sc-list .sc-row")).to_have_count(2)
    assert listed(page) == [first.pk, third.pk]

    filters.get_by_role("link", name="Assigned to me").click()
    expect(page).to_have_url(re.compile(r"\?filter=mine$"))
    expect(page.locator("#sc-list .sc-row")).to_have_count(1)
    assert listed(page) == [third.pk]

    # Search combines with the filter; the URL follows (replacing, not stacking, entries).
    filters.get_by_role("link", name="All").click()
    expect(page.locator("#sc-list .sc-row")).to_have_count(3)
    page.locator("#sc-q").fill("corp.test")
    expect(page).to_have_url(re.compile(r"/admin/chat/\?q=corp.test$"))
    expect(page.locator("#sc-list .sc-row")).to_have_count(1)
    assert listed(page) == [second.pk]
    page.locator("#sc-q").fill("parcel")
    expect(page).to_have_url(re.compile(r"\?q=parcel$"))
    assert listed(page) == [third.pk]
    filters.get_by_role("link", name="Unread").click()
    expect(page).to_have_url(re.compile(r"\?filter=unread&q=parcel$"))
    expect(page.locator("#sc-list .sc-row")).to_have_count(1)

    # Empty states name the reason.
    page.locator("#sc-q").fill("nothing-like-this")
    expect(page.locator("#sc-empty")).to_have_text("No conversations match “nothing-like-this”.")
    page.locator("#sc-q").fill("")
    expect(page).to_have_url(re.compile(r"\?filter=unread$"))
    filters.get_by_role("link", name="Assigned to me").click()
    # The search sends the filter the page shows (#sc-state, swapped in with the list):
    # type only once the click's answer is in, as a person would see it.
    expect(filters.locator("a.active")).to_have_text("Assigned to me")
    page.locator("#sc-q").fill("invoice")
    expect(page.locator("#sc-empty")).to_be_visible()
    page.locator("#sc-q").fill("")
    expect(page.locator("#sc-list .sc-row")).to_have_count(1)

    # Open a conversation: its id joins the URL; the filter stays.
    page.locator(f"#sc-row-{third.pk} .sc-row-link").click()
    expect(page).to_have_url(re.compile(rf"/admin/chat/{third.pk}/\?filter=mine$"))
    expect(page.locator("#sc-participant-name")).to_have_text("Carol Cole")
    expect(row(page, third.pk)).to_have_class(re.compile(r"\bsc-row-active\b"))

    # Back: the conversation closes, then the filter goes back; forward reopens it.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/admin/chat/\?filter=mine$"))
    expect(page.locator(".sc-conversation")).to_have_count(0)
    expect(page.locator("#sc-filters a.active")).to_have_text("Assigned to me")
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"/admin/chat/{third.pk}/\?filter=mine$"))
    expect(page.locator("#sc-participant-name")).to_have_text("Carol Cole")
    wait_chat_connected(page)  # the page's script is alive after a history restore

    # The URL is a bookmark: loading it cold shows the same state.
    page.goto(f"/admin/chat/{first.pk}/?filter=open&q=invoice")
    expect(page.locator("#sc-filters a.active")).to_have_text("Open")
    expect(page.locator("#sc-q")).to_have_value("invoice")
    assert listed(page) == [first.pk]
    expect(page.locator("#sc-participant-name")).to_have_text("Alice Archer")
    assert errors == []


def test_a_search_typed_before_the_filters_answer_uses_the_new_filter(new_context, staff, three):
    """List requests wait for each other (hx-sync on #sc-list): a search typed while the
    filter's answer is still on its way goes after it, with the new filter, and the
    filter's late answer never replaces the search's."""
    _first, _second, third = three
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page)
    held = []
    filter_url = re.compile(r"/admin/chat/\?filter=unread$")
    page.route(filter_url, lambda route: held.append(route))
    with page.expect_request(filter_url):
        page.locator("#sc-filters").get_by_role("link", name="Unread").click()
    searches: list[str] = []
    page.on("request", lambda request: "q=parcel" in request.url and searches.append(request.url))
    page.evaluate(
        """() => document.getElementById("sc-search").addEventListener(
            "htmx:trigger", () => { window.scSearchFired = true; })"""
    )
    page.locator("#sc-q").fill("parcel")
    page.wait_for_function("window.scSearchFired === true")  # the search has fired
    held.pop().continue_()
    expect(page).to_have_url(re.compile(r"\?filter=unread&q=parcel$"))
    assert len(searches) == 1 and "filter=unread" in searches[0], searches
    expect(page.locator("#sc-filters a.active")).to_have_text("Unread")
    expect(page.locator("#sc-list .sc-row")).to_have_count(1)
    assert listed(page) == [third.pk]
    page.unroute(filter_url)
    assert errors == []


def test_the_lists_reload_after_hello_never_undoes_a_newer_filter(new_context, staff, three):
    """The lobby's hello reloads the list (events before the socket joined are not
    replayed). If a filter was chosen while that reload was on its way, its older answer
    (for "All") is dropped instead of replacing the filtered list."""
    first, _second, third = three
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    held = []
    rows_url = re.compile(r"/admin/chat/rows/(\?.*)?$")
    page.route(rows_url, lambda route: held.append(route))
    page.goto("/admin/chat/")
    expect(page.locator("#sc-live")).to_have_attribute("data-live", "on", timeout=10_000)
    assert len(held) == 1  # the reload after hello, held
    page.locator("#sc-filters").get_by_role("link", name="Unread").click()
    expect(page.locator("#sc-list .sc-row")).to_have_count(2)
    with page.expect_event("requestfinished", lambda request: "/rows/" in request.url):
        held.pop().continue_()
    # The answer's body is read and handled in promise callbacks: two frames later it is
    # done (it does nothing observable when it is dropped, which is the point).
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert listed(page) == [first.pk, third.pk]
    page.unroute(rows_url)
    assert errors == []


def test_keyboard_shortcuts(new_context, staff, three):
    first, second, third = three
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page)
    expect(page.locator("#sc-help-button")).to_contain_text("Keyboard shortcuts")
    page.keyboard.press("?")
    help_dialog = page.locator("#sc-help")
    expect(help_dialog).to_be_visible()
    for key in ("j", "k", "Enter", "r", "Esc", "x", "/"):
        expect(
            help_dialog.locator("kbd", has_text=re.compile(rf"^{re.escape(key)}$")).first
        ).to_be_visible()
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    page.keyboard.press("j")
    expect(page.locator(f"#sc-row-{first.pk} .sc-row-link")).to_be_focused()
    page.keyboard.press("j")
    expect(page.locator(f"#sc-row-{second.pk} .sc-row-link")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#sc-row-{third.pk} .sc-row-link")).to_be_focused()
    page.keyboard.press("k")
    expect(page.locator(f"#sc-row-{second.pk} .sc-row-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/admin/chat/{second.pk}/$"))
    expect(page.locator("#sc-participant-name")).to_have_text("Bob Baker")

    # r focuses the reply box (this one is closed: reopen it first, from the keyboard too).
    page.locator("#sc-pane-header").get_by_role("button", name="Reopen").click()
    expect(page.locator("#sc-reply")).to_be_enabled()
    page.locator(f"#sc-row-{second.pk} .sc-row-link").focus()
    page.keyboard.press("r")
    expect(page.locator("#sc-reply")).to_be_focused()
    page.keyboard.type("typed from the keyboard")
    page.keyboard.press("Escape")  # leaves the reply box
    expect(page.locator("#sc-reply")).not_to_be_focused()
    page.keyboard.press("Escape")  # closes the conversation
    expect(page.locator(".sc-conversation")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/admin/chat/$"))
    expect(page.locator(f"#sc-row-{second.pk} .sc-row-link")).to_be_focused()

    # x selects for bulk actions; / goes to the search.
    page.keyboard.press("x")
    expect(page.locator(f"#sc-row-{second.pk} .sc-row-check")).to_be_checked()
    expect(page.locator("#sc-selected")).to_have_text("1 selected")
    page.keyboard.press("/")
    expect(page.locator("#sc-q")).to_be_focused()
    assert errors == []


def test_bulk_mark_read_and_assign(new_context, make_user, staff, three):
    first, second, third = three
    robin = make_user("robin", last_name="Agent", is_staff=True)
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page)
    expect(page.locator("#sc-bulk-actions")).to_be_hidden()
    row(page, first.pk).locator(".sc-row-check").check()
    row(page, third.pk).locator(".sc-row-check").check()
    expect(page.locator("#sc-selected")).to_have_text("2 selected")
    bulk = page.locator("#sc-bulk-actions")
    expect(bulk).to_be_visible()

    bulk.get_by_role("button", name="Mark read").click()
    expect(page.locator("#sc-alerts")).to_contain_text("Marked 2 conversations read.")
    for conversation in (first, third):
        expect(row(page, conversation.pk).locator(".sc-unread-badge")).to_be_hidden()
    expect(row(page, first.pk).locator(".sc-row-check")).not_to_be_checked()

    page.locator("#sc-select-all").check()
    expect(page.locator("#sc-selected")).to_have_text("3 selected")
    bulk.get_by_role("combobox").select_option(label="Robin Agent")
    bulk.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#sc-alerts")).to_contain_text("Assigned 3 conversations to Robin Agent.")
    for conversation in (first, second, third):
        expect(row(page, conversation.pk).locator(".sc-row-assignee")).to_contain_text(
            "Robin Agent"
        )

    assert set(Conversation.objects.values_list("assigned_to", flat=True)) == {robin.pk}
    audit = AuditEntry.objects.filter(actor=staff, at__gte=timezone.now() - timedelta(minutes=1))
    assert audit.filter(action="mark_read").count() >= 2
    assert audit.filter(action="assign", details__assignee=robin.pk).count() == 3
    assert errors == []


def test_load_more_pages_through_the_list(new_context, make_user, staff):
    customers = [make_user(f"user{i:02d}") for i in range(33)]
    for minutes, user in enumerate(customers):
        conversation_with(user, f"Question {minutes}", minutes_ago=minutes + 1)
    page = new_context(staff).new_page()
    open_inbox(page)
    expect(page.locator("#sc-list .sc-row")).to_have_count(30)  # INBOX_PAGE_SIZE
    # A live change to the oldest loaded row keeps it in place (more pages follow it).
    oldest = page.locator("#sc-list .sc-row").last
    oldest.locator(".sc-row-check").check()
    page.locator("#sc-bulk-actions").get_by_role("button", name="Assign", exact=True).click()
    expect(oldest.locator(".sc-row-assignee")).to_contain_text("Sam Support")
    expect(page.locator("#sc-list .sc-row")).to_have_count(30)
    page.get_by_role("button", name="Load more").click()
    expect(page.locator("#sc-list .sc-row")).to_have_count(33)
    expect(page.get_by_role("button", name="Load more")).to_have_count(0)
    names = page.locator("#sc-list .sc-row-name").all_inner_texts()
    assert names == [user.get_full_name() for user in customers]


def test_phone_layout_one_pane_at_a_time(new_context, make_user, staff, three):
    first, _second, _third = three
    page = new_context(
        staff, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    ).new_page()
    open_inbox(page)
    expect(page.locator(".sc-list-pane")).to_be_visible()
    expect(page.locator("#sc-pane")).to_be_hidden()
    box = page.locator(".sc-list-pane").bounding_box()
    assert box["width"] > 330  # the list takes the width
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scroll
    row(page, first.pk).locator(".sc-row-link").click()
    expect(page.locator(".sc-conversation")).to_be_visible()
    expect(page.locator(".sc-list-pane")).to_be_hidden()
    expect(page.locator("#sc-reply")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.locator("#sc-close-pane").click()  # the back arrow
    expect(page.locator(".sc-list-pane")).to_be_visible()
    expect(page.locator(".sc-conversation")).to_have_count(0)


def test_screenshots(new_context, make_user, staff, tmp_path):
    """Desktop and phone screenshots of a working inbox (docs/screenshots/)."""
    target = DOCS_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    robin = make_user("robin", last_name="Agent", is_staff=True)
    people = [
        ("casey", "Casey", "Customer", ["Hi! How do I export a dashboard to PDF?"], 2),
        ("jordan", "Jordan", "Lee", ["Is there an annual plan?", "We are a team of 12."], 9),
        ("priya", "Priya", "Natarajan", ["The CSV import stops at row 5,000."], 25),
        ("morgan", "Morgan", "Diaz", ["Thanks, that fixed it!"], 180),
    ]
    conversations = []
    for username, first, last, texts, minutes in people:
        user = make_user(
            username, first_name=first, last_name=last, email=f"{username}@example.com"
        )
        conversation = conversation_with(user, *texts, minutes_ago=minutes)
        conversations.append(conversation)
    casey, _jordan, priya, morgan = conversations
    services.send_message(
        casey, staff, "Hello Casey! Open the dashboard, then Share → Export → PDF.", uuid.uuid4()
    )
    services.mark_read(Conversation.objects.get(pk=casey.pk), staff)
    services.assign(Conversation.objects.get(pk=casey.pk), staff, staff)
    services.assign(Conversation.objects.get(pk=priya.pk), staff, robin)
    services.close(Conversation.objects.get(pk=morgan.pk), staff)

    page = new_context(staff, viewport={"width": 1280, "height": 800}).new_page()
    open_inbox(page)
    customer = Customer(new_context(Conversation.objects.get(pk=casey.pk).customer).new_page())
    customer.conversation_id = casey.pk
    page.locator(f"#sc-row-{casey.pk} .sc-row-link").click()
    wait_chat_connected(page)
    customer.connect()
    customer.send("Found it, thanks. One more thing: can I schedule it weekly?")
    expect(page.locator(".sc-history .sc-msg")).to_have_count(3)
    customer.frame(type_="typing:start")
    expect(page.locator("#sc-typing")).to_be_visible()
    page.locator("#sc-reply").fill("Yes: Share → Schedule. ")
    page.screenshot(path=str(target / "inbox-desktop.png"))

    phone = new_context(
        staff, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    ).new_page()
    open_inbox(phone)
    phone.screenshot(path=str(target / "inbox-phone-list.png"))
    phone.locator(f"#sc-row-{casey.pk} .sc-row-link").click()
    expect(phone.locator(".sc-history .sc-msg")).to_have_count(3)
    phone.mouse.move(0, 0)  # no hover effect where the tap was
    phone.screenshot(path=str(target / "inbox-phone-conversation.png"))
    for name in ("inbox-desktop.png", "inbox-phone-list.png", "inbox-phone-conversation.png"):
        assert (target / name).stat().st_size > 10_000


def test_rows_checked_while_the_list_reloads_stay_checked(new_context, make_user, staff):
    """The lobby's hello reloads the list; a row checked while that request is in flight
    (right after the page loads) must stay checked, with its bulk actions shown."""
    for minutes in range(3):
        conversation_with(make_user(f"early{minutes}"), f"Hi {minutes}", minutes_ago=minutes + 1)
    page = new_context(staff).new_page()
    held = []
    rows_url = re.compile(r".*/admin/chat/rows/(\?.*)?$")
    page.route(rows_url, lambda route: held.append(route))
    open_inbox(page)  # the socket said hello: the reload has left and is held
    for _ in range(50):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the list reload never started"
    first = page.locator("#sc-list .sc-row").first
    first.evaluate("el => { el.dataset.before = 'reload'; }")
    first.locator(".sc-row-check").check()
    for route in held:
        route.continue_()
    page.unroute(rows_url)
    expect(page.locator("#sc-list .sc-row[data-before]")).to_have_count(0)  # replaced
    expect(page.locator("#sc-list .sc-row").first.locator(".sc-row-check")).to_be_checked()
    expect(page.locator("#sc-bulk-actions")).to_be_visible()
