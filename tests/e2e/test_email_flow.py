"""The whole email path as people live it (issue #12): the customer leaves, staff replies
twice, the delay passes, exactly one email with both replies arrives, its link opens the
conversation in the widget, and reading it clears the badge.

Everything is real: the example site on uvicorn with Redis (presence is shared, so the
worker knows who is online), django-tasks-db's ``db_worker`` as a separate process writing
the emails to files, and two Chromium contexts.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from django_support_chat.models import EmailNotification, Message, Notification

from ..servers import database_url, free_port
from ..test_email_worker import wait_for
from .conftest import ROOT, start_server, stop_server
from .widget_helpers import customer_conversation, open_widget, send_from_widget, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DELAY = 5  # seconds: SUPPORT_CHAT["EMAIL_DELAY"] of the server, instead of 120


@pytest.fixture
def site(transactional_db: None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The server and the worker, sharing the test database, Redis and the site URL."""
    redis_url = os.environ.get("REDIS_URL_TEST")
    if not redis_url:
        pytest.fail("REDIS_URL_TEST is not set: run the tests with scripts/test.sh")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "REDIS_URL": redis_url,
        "SITE_URL": url,
        "SUPPORT_CHAT_EMAIL_DELAY": str(DELAY),
    }
    server, _ = start_server(env, port=port)
    outbox = tmp_path / "outbox"
    worker_log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "django", "db_worker", "--interval", "0.2", "--no-startup-delay"],
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "DJANGO_SETTINGS_MODULE": "tests.e2e.email_worker_settings",
            "DATABASE_URL": database_url(),
            "EMAIL_TEST_DIR": str(outbox),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
            "DEBUG": "0",
        },
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    yield {"url": url, "outbox": outbox, "worker_log": tmp_path / "worker.log"}
    worker.terminate()
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
    worker_log.close()
    stop_server(server)


def emails_to(outbox: Path, address: str) -> list[EmailMessage]:
    """Every email the file backend wrote to ``outbox`` for ``address``."""
    found = []
    for path in sorted(outbox.glob("*")) if outbox.exists() else []:
        # One file per backend connection; messages in it are separated by a line of dashes.
        for raw in path.read_text().split("\n" + "-" * 79 + "\n"):
            if not raw.strip():
                continue
            message = email.message_from_string(raw.strip() + "\n", policy=default_policy)
            if address in str(message["To"]):
                found.append(message)  # type: ignore[arg-type]
    return found


def logged_in(browser: Any, url: str, user: Any) -> Any:
    context = browser.new_context(base_url=url)
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": session_cookie(user), "url": url}]
    )
    return context


def test_customer_leaves_staff_replies_one_email_brings_them_back(browser, make_user, site):
    customer = make_user("carol", first_name="Carol", email="carol@example.com")
    staff = make_user(
        "sam.lee", first_name="Sam", last_name="Lee", email="sam@corp.example", is_staff=True
    )
    customer_context = logged_in(browser, site["url"], customer)
    staff_context = logged_in(browser, site["url"], staff)
    try:
        # The customer asks, then leaves the site.
        page = customer_context.new_page()
        page.goto("/")
        open_widget(page)
        send_from_widget(page, "My invoice shows the wrong amount")
        expect(page.locator(".scw-own .scw-bubble").last).to_contain_text("wrong amount")
        wait_for(lambda: Message.objects.filter(sender=customer).exists(), 10, "the stored message")
        conversation = customer_conversation(customer)

        inbox = staff_context.new_page()
        inbox.goto(f"/admin/chat/{conversation.pk}/")
        label = inbox.locator("#sc-pane-header .sc-presence-label")
        expect(label).to_have_attribute("data-online", "true", timeout=10_000)
        page.close()
        # Gone: the inbox hears the customer go offline (the presence entry is deleted).
        expect(label).to_have_attribute("data-online", "false", timeout=10_000)

        # Two replies inside one delay window.
        for text in ("We are looking at it", "Fixed: the refund is on its way"):
            inbox.locator("#sc-reply").fill(text)
            inbox.locator("#sc-reply").press("Enter")
            expect(inbox.locator(".sc-msg-staff", has_text=text)).to_have_count(1)

        # The worker sends one email once the delay has passed, with both replies.
        [message] = wait_for(
            lambda: emails_to(site["outbox"], customer.email), 30 + DELAY, "the customer's email"
        )
        row = EmailNotification.objects.get(recipient=customer, conversation=conversation)
        assert row.status == "sent"
        assert (row.processed_at - row.created_at).total_seconds() >= DELAY
        assert not EmailNotification.objects.filter(status="pending").exists()
        assert len(emails_to(site["outbox"], customer.email)) == 1
        body = message.get_body(preferencelist=("plain",)).get_content()
        assert "We are looking at it" in body
        assert "Fixed: the refund is on its way" in body
        assert "sam@corp.example" not in message.as_string()  # staff shown by name only
        assert message["Message-ID"] and message["List-Unsubscribe"]

        # The link brings the customer back: the panel opens on the conversation.
        link = re.search(re.escape(site["url"]) + r"/\S*#support-chat", body)
        assert link, body
        page = customer_context.new_page()
        page.goto(link.group(0))
        panel = page.locator(".scw-panel.scw-in")
        expect(panel).to_be_visible(timeout=10_000)
        expect(
            panel.locator(".scw-theirs .scw-bubble", has_text="Fixed: the refund")
        ).to_be_visible()
        assert "#support-chat" not in page.url  # a reload does not reopen it

        # Reading it clears the badge and the notifications.
        expect(page.locator(".support-chat-badge")).to_be_hidden()
        wait_for(
            lambda: not Notification.objects.filter(user=customer, read_at__isnull=True).exists(),
            10,
            "the customer's notifications to be read",
        )
        unread = page.request.get("/api/chat/notifications/unread_count").json()
        assert unread == {"unread_count": 0}
        conversation.refresh_from_db()
        assert conversation.unread_user_count == 0
    finally:
        customer_context.close()
        staff_context.close()
