"""The staff inbox end to end: the example project on uvicorn, headless Chromium, a customer
on the real WebSocket, staff in the inbox pages. Everything "live" here is delivered by the
sockets: no test reloads a page to see a change."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from django_support_chat import services
from django_support_chat.models import AuditEntry, Conversation

from .inbox_helpers import Customer, open_inbox, row, wait_chat_connected, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_events_from_the_test_process(settings):
    """Data made here goes straight to the database; only the server publishes events
    (the test process has a Playwright event loop in this thread)."""
    settings.CHANNEL_LAYERS = {}


@pytest.fixture
def staff(make_user):
    return make_user("sam", last_name="Support", is_staff=True, email="sam@acme.test")


@pytest.fixture
def customer_user(make_user):
    return make_user("casey", last_name="Customer", email="casey@example.com")


def test_customer_message_arrives_live_staff_reads_and_replies(new_context, staff, customer_user):
    inbox = new_context(staff).new_page()
    errors = watch_errors(inbox)
    open_inbox(inbox)
    expect(inbox.locator("#sc-empty")).to_contain_text("No conversations yet")

    customer = Customer(new_context(customer_user).new_page())
    conversation_id = customer.start_conversation()
    # conversation:new: the row appears on top without a reload.
    expect(row(inbox, conversation_id)).to_be_visible()
    expect(inbox.locator("#sc-empty")).to_be_hidden()

    customer.connect()
    first = customer.send("Hi, my invoice is wrong")
    second = customer.send_via_api("It says 40 instead of 30")  # the REST API works too
    the_row = row(inbox, conversation_id)
    expect(the_row.locator(".sc-row-text")).to_have_text("It says 40 instead of 30")
    expect(the_row.locator(".sc-unread-badge")).to_be_visible()
    expect(the_row.locator(".sc-unread-count")).to_have_text("2")
    expect(the_row).to_have_class(re.compile(r"\bsc-unread\b"))

    # Staff opens it: the badge clears, the customer gets the read receipt.
    the_row.locator(".sc-row-link").click()
    expect(inbox).to_have_url(re.compile(rf"/admin/chat/{conversation_id}/$"))
    expect(inbox.locator("#sc-participant-name")).to_have_text("Casey Customer")
    expect(inbox.locator(f"#sc-msg-{first['id']} .sc-bubble")).to_have_text(
        "Hi, my invoice is wrong"
    )
    expect(the_row.locator(".sc-unread-badge")).to_be_hidden()
    read = customer.wait_for("message:read", f"d.side === 'staff' && d.up_to_id >= {second['id']}")
    assert read["conversation_id"] == conversation_id
    assert Conversation.objects.get(pk=conversation_id).unread_staff_count == 0

    # The customer is online and typing: staff see both live.
    wait_chat_connected(inbox)
    expect(inbox.locator(".sc-pane-header .sc-presence-label")).to_have_text("Online")
    customer.frame(type_="typing:start")
    expect(inbox.locator("#sc-typing")).to_contain_text("Casey Customer is typing")
    customer.frame(type_="typing:stop")
    expect(inbox.locator("#sc-typing")).to_be_hidden()

    # A message while the conversation is open is read at once (the page is visible).
    third = customer.send("Are you there?")
    expect(inbox.locator(f"#sc-msg-{third['id']}")).to_be_visible()
    customer.wait_for("message:read", f"d.side === 'staff' && d.up_to_id >= {third['id']}")
    expect(the_row.locator(".sc-unread-badge")).to_be_hidden()

    # Reply: Shift+Enter adds a line, Enter sends; the customer gets it live.
    reply = inbox.locator("#sc-reply")
    reply.click()
    reply.type("Sorry about that!")
    reply.press("Shift+Enter")
    reply.type("Fixed: it is 30 now.")
    reply.press("Enter")
    received = customer.wait_for("message:new", "d.message.sender_side === 'staff'")
    assert received["message"]["text"] == "Sorry about that!\nFixed: it is 30 now."
    assert received["message"]["sender"]["name"] == "Sam Support"
    expect(reply).to_have_value("")
    staff_message = inbox.locator(f"#sc-msg-{received['message']['id']}")
    expect(staff_message.locator(".sc-bubble")).to_have_text(
        "Sorry about that!\nFixed: it is 30 now."
    )
    expect(staff_message).to_have_count(1)  # the POST answer and the socket echo, once
    expect(the_row.locator(".sc-row-text")).to_have_text("Sorry about that! Fixed: it is 30 now.")

    # The customer's client reports delivered, then read: staff see the receipts move.
    receipt = staff_message.locator(".sc-receipt")
    expect(receipt).to_have_attribute("data-status", "sent")
    customer.frame({"up_to_id": received["message"]["id"]}, "message:delivered")
    expect(receipt).to_have_attribute("data-status", "delivered")
    customer.frame({"up_to_id": received["message"]["id"]}, "message:read")
    expect(receipt).to_have_attribute("data-status", "read")

    actions = set(
        AuditEntry.objects.filter(conversation_id=conversation_id).values_list("action", flat=True)
    )
    assert {"mark_read", "reply"} <= actions
    assert errors == []


def test_assign_close_and_reopen(new_context, make_user, staff, customer_user):
    colleague = make_user("robin", last_name="Agent", is_staff=True)
    conversation, _ = services.get_or_start_conversation(customer_user)
    services.send_message(conversation, customer_user, "Can someone help?", uuid.uuid4())

    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page, f"/admin/chat/{conversation.pk}/")
    header = page.locator("#sc-pane-header")
    the_row = row(page, conversation.pk)

    # Assignment dropdown: to a colleague.
    header.locator("#sc-assign-toggle").click()
    header.locator(".dropdown-menu").get_by_role("button", name="Robin Agent").click()
    expect(header.locator(".sc-assignee")).to_have_text("Robin Agent")
    expect(the_row.locator(".sc-row-assignee")).to_contain_text("Robin Agent")

    # Quick action: assign to me; then the "Assigned to me" filter lists it.
    header.get_by_role("button", name="Assign to me").click()
    expect(header.locator(".sc-assignee")).to_have_text("Sam Support")
    expect(header.get_by_role("button", name="Assign to me")).to_have_count(0)
    page.locator("#sc-filters").get_by_role("link", name="Assigned to me").click()
    expect(page).to_have_url(re.compile(rf"/admin/chat/{conversation.pk}/\?filter=mine$"))
    expect(the_row).to_be_visible()

    # The open/closed switch closes it: the reply box is disabled.
    switch = header.locator("#sc-status-switch")
    expect(switch).to_be_checked()
    switch.click()
    expect(page.locator("#sc-status-switch")).not_to_be_checked()
    expect(page.locator("#sc-pane-header .form-check-label")).to_have_text("Closed")
    expect(page.locator("#sc-reply")).to_be_disabled()
    expect(page.locator(".sc-closed-note")).to_be_visible()
    expect(the_row.locator(".sc-status-chip")).to_have_text("Closed")

    # Reopen with the quick action; unassign from the dropdown.
    page.locator("#sc-pane-header").get_by_role("button", name="Reopen").click()
    expect(page.locator("#sc-status-switch")).to_be_checked()
    expect(page.locator("#sc-reply")).to_be_enabled()
    expect(the_row.locator(".sc-status-chip")).to_have_text("Open")
    page.locator("#sc-assign-toggle").click()
    page.locator("#sc-pane-header .dropdown-menu").get_by_role("button", name="Unassign").click()
    expect(page.locator("#sc-pane-header .sc-assignee")).to_have_text("Unassigned")

    # Close with the quick action button too.
    page.locator("#sc-pane-header").get_by_role("button", name="Close", exact=True).click()
    expect(page.locator("#sc-status-switch")).not_to_be_checked()

    actions = list(
        AuditEntry.objects.filter(conversation=conversation)
        .order_by("at", "id")
        .values_list("action", "actor__username")
    )
    assert actions == [
        ("mark_read", "sam"),  # opening it
        ("assign", "sam"),
        ("assign", "sam"),
        ("close", "sam"),
        ("reopen", "sam"),
        ("unassign", "sam"),
        ("close", "sam"),
    ]
    assert colleague.pk != staff.pk
    assert errors == []


def test_two_staff_see_each_others_actions_live(new_context, make_user, staff, customer_user):
    colleague = make_user("robin", last_name="Agent", is_staff=True)
    conversation, _ = services.get_or_start_conversation(customer_user)
    services.send_message(conversation, customer_user, "Hello?", uuid.uuid4())
    other_customer = make_user("dana", last_name="Doe")
    other, _ = services.get_or_start_conversation(other_customer)
    services.send_message(other, other_customer, "Second question", uuid.uuid4())

    sam = new_context(staff).new_page()
    robin = new_context(colleague).new_page()
    errors = watch_errors(sam) + watch_errors(robin)
    open_inbox(sam, f"/admin/chat/{conversation.pk}/")
    open_inbox(robin, f"/admin/chat/{conversation.pk}/")
    wait_chat_connected(sam)
    wait_chat_connected(robin)

    # Sam assigns it to himself: Robin's list row and open header follow.
    sam.locator("#sc-pane-header").get_by_role("button", name="Assign to me").click()
    expect(robin.locator(f"#sc-row-{conversation.pk} .sc-row-assignee")).to_contain_text(
        "Sam Support"
    )
    expect(robin.locator("#sc-pane-header .sc-assignee")).to_have_text("Sam Support")

    # Sam replies: Robin sees the message in the conversation and the list.
    sam.locator("#sc-reply").fill("On it.")
    sam.locator("#sc-reply").press("Enter")
    expect(robin.locator("#sc-history .sc-msg-staff .sc-bubble")).to_have_text("On it.")
    expect(robin.locator(f"#sc-row-{conversation.pk} .sc-row-text")).to_have_text("On it.")
    # ... and Robin sees Sam typing.
    sam.locator("#sc-reply").type("More")
    expect(robin.locator("#sc-typing")).to_contain_text("A colleague is typing")

    # Robin closes it: Sam's switch flips and his reply box locks.
    robin.locator("#sc-pane-header").get_by_role("button", name="Close", exact=True).click()
    expect(sam.locator("#sc-status-switch")).not_to_be_checked()
    expect(sam.locator("#sc-reply")).to_be_disabled()
    expect(sam.locator(f"#sc-row-{conversation.pk} .sc-status-chip")).to_have_text("Closed")

    # Robin works the other conversation: Sam's unread badge for it clears live.
    expect(sam.locator(f"#sc-row-{other.pk} .sc-unread-count")).to_have_text("1")
    robin.locator(f"#sc-row-{other.pk} .sc-row-link").click()
    expect(sam.locator(f"#sc-row-{other.pk} .sc-unread-badge")).to_be_hidden()
    assert errors == []


def test_markup_from_a_customer_is_shown_as_text_and_runs_nothing(
    new_context, staff, customer_user
):
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page)
    customer = Customer(new_context(customer_user).new_page())
    customer.connect()
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
    sent = customer.send(payload)
    the_row = row(page, customer.conversation_id)
    expect(the_row.locator(".sc-row-text")).to_have_text(payload)
    the_row.locator(".sc-row-link").click()
    bubble = page.locator(f"#sc-msg-{sent['id']} .sc-bubble")
    expect(bubble).to_have_text(payload)
    wait_chat_connected(page)
    # The same text arriving live over the socket.
    live = customer.send(payload + " again")
    expect(page.locator(f"#sc-msg-{live['id']} .sc-bubble")).to_have_text(payload + " again")
    for message_id in (sent["id"], live["id"]):
        element = page.locator(f"#sc-msg-{message_id} .sc-bubble")
        assert element.locator("img, script, b").count() == 0
    assert page.locator("#sc-list img, #sc-list script, #sc-list b").count() == 0
    assert page.evaluate("() => window.pwned") is None
    # A link in a message is a safe link.
    link_message = customer.send("See https://example.com/help")
    link = page.locator(f"#sc-msg-{link_message['id']} .sc-bubble a")
    expect(link).to_have_attribute("href", "https://example.com/help")
    expect(link).to_have_attribute("rel", "nofollow noopener noreferrer")
    assert errors == []


def test_a_reply_sent_before_the_previous_ones_answer_is_its_own_message(
    new_context, staff, customer_user
):
    """Only the text that was sent leaves the box (nothing typed meanwhile is wiped), and
    each reply leaves with its own client_id: one sent while the previous one is still on
    its way (htmx queues it) is stored as a message of its own, not taken for a resend."""
    conversation, _ = services.get_or_start_conversation(customer_user)
    services.send_message(conversation, customer_user, "Hello?", uuid.uuid4())
    page = new_context(staff).new_page()
    errors = watch_errors(page)
    open_inbox(page, f"/admin/chat/{conversation.pk}/")
    wait_chat_connected(page)

    held: list = []
    hold = {"next": True}

    def route(request_route):
        if hold["next"]:
            hold["next"] = False
            held.append(request_route)
        else:
            request_route.continue_()

    reply_url = re.compile(rf"/admin/chat/{conversation.pk}/reply/$")
    page.route(reply_url, route)
    box = page.locator("#sc-reply")
    history = page.locator("#sc-history .sc-msg-staff")

    # A draft typed while a reply is on its way stays in the box.
    with page.expect_request(reply_url):
        box.fill("First, held on the way")
        box.press("Enter")
    box.fill("Second, typed meanwhile")
    held.pop().continue_()
    expect(history.filter(has_text="First")).to_have_count(1)
    expect(box).to_have_value("Second, typed meanwhile")

    # Sent while the previous reply is held: queued by htmx, then sent as its own message.
    hold["next"] = True
    with page.expect_request(reply_url):
        box.press("Enter")
    box.fill("Third, sent at once")
    box.press("Enter")
    held.pop().continue_()
    expect(history.filter(has_text="Second")).to_have_count(1)
    expect(history.filter(has_text="Third")).to_have_count(1)
    expect(box).to_have_value("")
    page.unroute(reply_url)

    replies = conversation.messages.filter(sender=staff)
    assert sorted(replies.values_list("text", flat=True)) == [
        "First, held on the way",
        "Second, typed meanwhile",
        "Third, sent at once",
    ]
    assert len(set(replies.values_list("client_id", flat=True))) == 3
    assert errors == []
