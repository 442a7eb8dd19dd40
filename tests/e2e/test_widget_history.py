"""Long histories: with 5,000 messages the widget keeps only a window of them in the DOM,
loads older pages through the cursor API while scrolling up, and stays responsive.

Run with ``-s`` to see the measured node counts and timings.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from django_support_chat.models import Conversation, Message, Side

from .widget_helpers import (
    no_server_errors,  # noqa: F401 (a fixture)
    open_widget,
    wait_connected,
    watch_page,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_server_errors"),
    pytest.mark.slow,
]

TOTAL = 5000
WINDOW = 120  # panel.js: most messages rendered at once
NODE_BUDGET = 1500  # elements under #support-chat, whatever the history length


def make_history(customer, staff) -> Conversation:
    """5,000 messages in one go (bulk_create), then the counters and watermarks set to
    match, as the service layer would have left them."""
    conversation = Conversation.objects.create(customer=customer)
    start = timezone.now() - timedelta(minutes=TOTAL)
    Message.objects.bulk_create(
        [
            Message(
                conversation=conversation,
                sender=customer if i % 3 == 0 else staff,
                sender_side=Side.USER if i % 3 == 0 else Side.STAFF,
                text=f"Message {i + 1}"
                + (" with a longer line of text to wrap" if i % 5 == 0 else ""),
                client_id=uuid.uuid4(),
                created_at=start + timedelta(minutes=i),
                seq=i + 1,
            )
            for i in range(TOTAL)
        ],
        batch_size=1000,
    )
    last = Message.objects.filter(conversation=conversation).order_by("-id").first()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message=last,
        last_message_at=last.created_at,
        user_read_id=last.pk,
        user_delivered_id=last.pk,
        staff_read_id=last.pk,
        staff_delivered_id=last.pk,
        unread_user_count=0,
        unread_staff_count=0,
        last_seq=last.seq,
    )
    return conversation


# Scrolls the log to the top again and again, waiting each time for older messages to
# show, until the oldest is rendered. Records the DOM size and the time of each step.
SCROLL_TO_START = """
async () => {
  const root = document.getElementById('support-chat');
  const log = root.querySelector('.scw-log');
  const firstId = () => Number(log.querySelector('.scw-item')?.dataset.id);
  const longTasks = [];
  new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration)))
    .observe({ type: 'longtask', buffered: false });
  const steps = [];
  for (let i = 0; i < 400; i++) {
    const before = firstId();
    const t0 = performance.now();
    log.scrollTop = 0;
    while (firstId() === before && performance.now() - t0 < 5000) {
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
    if (firstId() === before) break;  // nothing older
    steps.push({
      ms: performance.now() - t0,
      nodes: root.querySelectorAll('*').length,
      items: log.querySelectorAll('.scw-item').length,
    });
  }
  return { steps, longTasks, first: log.querySelector('.scw-item .scw-text').textContent };
}
"""

SCROLL_TO_END = """
async () => {
  const root = document.getElementById('support-chat');
  const log = root.querySelector('.scw-log');
  const steps = [];
  for (let i = 0; i < 400; i++) {
    const before = log.lastElementChild && root.querySelector('.scw-list').lastElementChild.dataset.id;
    log.scrollTop = log.scrollHeight;
    for (let f = 0; f < 3; f++) await new Promise((resolve) => requestAnimationFrame(resolve));
    const after = root.querySelector('.scw-list').lastElementChild.dataset.id;
    steps.push({ nodes: root.querySelectorAll('*').length,
                 items: log.querySelectorAll('.scw-item').length });
    if (after === before) break;
  }
  const texts = log.querySelectorAll('.scw-list .scw-text');
  return { steps, last: texts[texts.length - 1].textContent };
}
"""


def test_five_thousand_messages_keep_the_dom_bounded(new_context, make_user, live_url):
    customer, staff = make_user("casey"), make_user("sam", is_staff=True)
    make_history(customer, staff)
    assert Message.objects.count() == TOTAL
    page = new_context(customer, viewport={"width": 1280, "height": 800}).new_page()
    errors = watch_page(page)
    api_calls = []
    page.on("request", lambda r: api_calls.append(r.url) if "/messages/" in r.url else None)
    page.goto("/")
    open_widget(page)
    wait_connected(page)
    expect(page.locator(".scw-list .scw-text").last).to_have_text("Message 5000")
    root = page.locator("#support-chat")
    opened_nodes = root.evaluate("el => el.querySelectorAll('*').length")
    assert page.locator(".scw-item").count() == 50  # the newest page only

    up = page.evaluate(SCROLL_TO_START)
    assert up["first"].startswith("Message 1 "), up["first"]  # reached the very first
    max_items = max(step["items"] for step in up["steps"])
    max_nodes = max(step["nodes"] for step in up["steps"])
    slowest = max(step["ms"] for step in up["steps"])
    pages = len([url for url in api_calls if "cursor=" in url])

    down = page.evaluate(SCROLL_TO_END)
    assert down["last"] == "Message 5000"
    max_nodes = max(max_nodes, *(step["nodes"] for step in down["steps"]))
    max_items = max(max_items, *(step["items"] for step in down["steps"]))

    print(
        f"\n  5,000 messages: {opened_nodes} elements in the widget when opened; "
        f"at most {max_items} messages / {max_nodes} elements while scrolling through all of "
        f"them ({len(up['steps'])} steps up, {pages} older pages fetched, {len(down['steps'])} "
        f"steps down); slowest step up {slowest:.0f} ms incl. network; long tasks "
        f"{len(up['longTasks'])}, longest {max(up['longTasks'], default=0):.0f} ms"
    )
    assert max_items <= WINDOW
    assert max_nodes <= NODE_BUDGET
    assert pages == (TOTAL - 50 + 49) // 50  # every older page fetched once, by cursor
    # Smooth: no main-thread task long enough to be felt as a hitch.
    assert max(up["longTasks"], default=0) < 200
    assert errors == []
