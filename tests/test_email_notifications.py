"""Email to people who are not online: the rules of issue #12, on the real stack.

Messages go through ``services.send_message`` with their on-commit work run (the
``message_created`` receiver schedules the email, its on-commit enqueues the task on the
test settings' django-tasks-db backend). Emails land in Django's locmem outbox; presence
is the real in-process store. "Time passes" by moving a row's ``due_at`` into the past.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from django_support_chat import notifications, payloads, presence, services, signals
from django_support_chat.models import EmailNotification, Notification, NotificationPreference, Side

from .conftest import API
from .factories import ConversationFactory, UserFactory, send

pytestmark = pytest.mark.django_db

BASE = "https://chat.example.org"
TASKS_MODULE = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
IMMEDIATE_BACKEND = f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"
EMAIL_SETTINGS = {"EMAIL_BASE_URL": BASE}


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.SUPPORT_CHAT = dict(EMAIL_SETTINGS)
    settings.DEFAULT_FROM_EMAIL = "help@example.org"


@pytest.fixture(autouse=True)
def store():
    """The real in-process presence store, empty before and after each test."""
    store = presence.get_presence_store()
    assert isinstance(store, presence.MemoryPresenceStore)
    store.clear()
    yield store
    store.clear()


@pytest.fixture
def say(django_capture_on_commit_callbacks):
    """Send a message and run what its commit triggers (scheduling, enqueueing)."""

    def say(conversation: Any, sender: Any, text: str = "hello") -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return send(conversation, sender, text)

    return say


@pytest.fixture
def deliver(django_capture_on_commit_callbacks):
    def deliver(row: EmailNotification) -> notifications.Outcome:
        with django_capture_on_commit_callbacks(execute=True):
            return notifications.deliver(row.pk)

    return deliver


def pending(recipient: Any) -> EmailNotification:
    return EmailNotification.objects.get(recipient=recipient, status="pending")


def make_due(row: EmailNotification) -> EmailNotification:
    """The delay has passed."""
    EmailNotification.objects.filter(pk=row.pk).update(due_at=timezone.now() - timedelta(seconds=1))
    row.refresh_from_db()
    return row


def connect(user: Any, staff: bool = False) -> str:
    conn = uuid.uuid4().hex
    async_to_sync(presence.get_presence_store().connect)(user.pk, conn, staff)
    return conn


def raw(message: Any) -> bytes:
    """The bytes Django's SMTP backend would send."""
    if django.VERSION >= (6, 0):
        return bytes(message.message(policy=email.policy.SMTP).as_bytes())
    return bytes(message.message().as_bytes(linesep="\r\n"))


def parsed(message: Any) -> Any:
    return email.message_from_bytes(raw(message), policy=email.policy.default)


def header(message: Any, name: str) -> str | None:
    """A header of the message as sent, unfolded."""
    value = parsed(message)[name]
    return None if value is None else " ".join(str(value).split())


def html_part(message: Any) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(html)


# --- scheduling and the delay ------------------------------------------------------------


class TestDelay:
    def test_nothing_before_due_at_then_one_email(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        before = timezone.now()
        say(conversation, staff, "We are looking into it")
        row = pending(customer)
        assert row.recipient_side == Side.USER
        assert (row.due_at - before).total_seconds() == pytest.approx(120, abs=5)
        # Enqueued on the tasks backend for the due time.
        [task] = DBTaskResult.objects.all()
        assert task.run_after == row.due_at
        assert task.args_kwargs["args"] == [row.pk]

        outcome = deliver(row)
        assert outcome.result == "early"
        assert mailoutbox == []
        row.refresh_from_db()
        assert row.status == "pending"

        outcome = deliver(make_due(row))
        assert outcome.result == "sent"
        [message] = mailoutbox
        assert message.to == [customer.email]
        assert message.from_email == "help@example.org"
        assert "We are looking into it" in message.body
        row.refresh_from_db()
        assert (row.status, row.message_count) == ("sent", 1)
        # A second run (retry, another worker) finds nothing to do.
        assert deliver(row).result == "gone"
        assert len(mailoutbox) == 1

    def test_the_delay_is_a_setting(self, settings, conversation, customer, staff, say):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_DELAY": 600}
        before = timezone.now()
        say(conversation, staff)
        assert (pending(customer).due_at - before).total_seconds() == pytest.approx(600, abs=5)

    def test_read_in_between_no_email(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "answer")
        row = pending(customer)
        services.mark_read(conversation, customer)
        outcome = deliver(make_due(row))
        assert (outcome.result, outcome.reason) == ("skipped", "read")
        assert mailoutbox == []

    def test_online_in_between_no_email(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "answer")
        row = pending(customer)
        conn = connect(customer)
        outcome = deliver(make_due(row))
        assert (outcome.result, outcome.reason) == ("skipped", "online")
        assert mailoutbox == []
        # Gone again: the next reply emails.
        async_to_sync(presence.get_presence_store().disconnect)(customer.pk, conn, False)
        say(conversation, staff, "second answer")
        assert deliver(make_due(pending(customer))).result == "sent"
        assert len(mailoutbox) == 1

    @pytest.mark.redis
    def test_online_on_another_worker_through_redis(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        """With Redis presence the sender sees sockets of every process: here a socket
        registered in Redis directly, as another worker's consumer would."""
        from tests.realtime.conftest import redis_url

        settings.SUPPORT_CHAT = {
            **EMAIL_SETTINGS,
            "PRESENCE_REDIS_URL": redis_url(),
            "PRESENCE_KEY_PREFIX": f"test-email-{uuid.uuid4().hex[:8]}",
        }
        other_worker = presence.RedisPresenceStore(redis_url(), max_connections=2)

        def on_other_worker(method: Any, *args: Any) -> None:
            async def call() -> None:
                try:
                    await method(*args)
                finally:
                    await other_worker.aclose()

            async_to_sync(call)()

        assert isinstance(presence.get_presence_store(), presence.RedisPresenceStore)
        say(conversation, staff, "answer")
        conn = uuid.uuid4().hex
        on_other_worker(other_worker.connect, customer.pk, conn, False)
        outcome = deliver(make_due(pending(customer)))
        assert (outcome.result, outcome.reason) == ("skipped", "online")
        on_other_worker(other_worker.disconnect, customer.pk, conn, False)
        say(conversation, staff, "second answer")
        assert deliver(make_due(pending(customer))).result == "sent"
        assert len(mailoutbox) == 1

    def test_email_off_entirely(self, settings, conversation, customer, staff, say):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_NOTIFICATIONS": {"enabled": False}}
        say(conversation, staff)
        assert not EmailNotification.objects.exists()
        assert not DBTaskResult.objects.exists()

    def test_sender_address_is_a_setting(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_FROM": "Chat <chat@example.org>"}
        say(conversation, staff)
        deliver(make_due(pending(customer)))
        assert mailoutbox[0].from_email == "Chat <chat@example.org>"

    @pytest.mark.parametrize("rule", ["assigned_staff", "unassigned_to_all_staff"])
    def test_staff_rules_can_be_turned_off(
        self, settings, conversation, customer, staff, say, rule
    ):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_NOTIFICATIONS": {rule: False}}
        if rule == "assigned_staff":
            services.assign(conversation, staff, staff)
        say(conversation, customer)
        assert not EmailNotification.objects.exists()

    def test_queries_per_customer_message_do_not_grow_with_the_staff(
        self, conversation, customer, staff, say
    ):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        def queries_for(text: str) -> int:
            with CaptureQueriesContext(connection) as captured:
                say(conversation, customer, text)
            return len(captured)

        say(conversation, customer, "first")  # pending rows for the staff there are
        few = queries_for("nothing new to schedule")
        UserFactory.create_batch(5, staff=True)
        say(conversation, customer, "five more rows")
        assert EmailNotification.objects.count() == 6
        assert queries_for("nothing new again") == few

    def test_customer_replies_can_be_turned_off(self, settings, conversation, staff, say):
        settings.SUPPORT_CHAT = {
            **EMAIL_SETTINGS,
            "EMAIL_NOTIFICATIONS": {"customer_replies": False},
        }
        say(conversation, staff)
        assert not EmailNotification.objects.exists()


class TestBackendsThatCannotDefer:
    @override_settings(TASKS={"default": {"BACKEND": IMMEDIATE_BACKEND}})
    def test_immediate_backend_does_not_send_early_the_command_sends(
        self, conversation, customer, staff, say, mailoutbox
    ):
        say(conversation, staff, "answer")
        row = pending(customer)
        assert mailoutbox == []  # not run at once: it would be early
        call_command("support_chat_send_notifications")
        assert mailoutbox == []  # not due yet
        make_due(row)
        call_command("support_chat_send_notifications")
        assert len(mailoutbox) == 1
        row.refresh_from_db()
        assert row.status == "sent"
        call_command("support_chat_send_notifications")
        assert len(mailoutbox) == 1

    @override_settings(TASKS={"default": {"BACKEND": "no.such.Backend"}})
    def test_a_failing_enqueue_is_logged_and_the_row_stays(
        self, conversation, customer, staff, say, caplog, mailoutbox
    ):
        with caplog.at_level(logging.ERROR, "django_support_chat.notifications"):
            message = say(conversation, staff, "answer")
        assert message.pk  # the send itself succeeded
        row = pending(customer)
        assert "Could not enqueue" in caplog.text
        make_due(row)
        call_command("support_chat_send_notifications")
        assert len(mailoutbox) == 1


# --- batching and windows ----------------------------------------------------------------


class TestBatching:
    def test_two_replies_one_email_listing_both(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "First reply")
        say(conversation, staff, "Second reply")
        assert EmailNotification.objects.count() == 1
        assert DBTaskResult.objects.count() == 1
        deliver(make_due(pending(customer)))
        [message] = mailoutbox
        assert "First reply" in message.body and "Second reply" in message.body
        assert "2 new replies" in message.subject
        row = EmailNotification.objects.get()
        assert row.message_count == 2

    def test_one_per_window_and_the_next_covers_only_new_messages(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "Old reply")
        deliver(make_due(pending(customer)))
        say(conversation, staff, "New reply")
        row = pending(customer)
        # A full delay after the new message, so never two emails within one window.
        assert row.due_at >= timezone.now() + timedelta(seconds=110)
        assert deliver(row).result == "early"
        deliver(make_due(row))
        assert len(mailoutbox) == 2
        assert "New reply" in mailoutbox[1].body
        assert "Old reply" not in mailoutbox[1].body

    def test_assigned_staff_get_customer_messages(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        services.assign(conversation, staff, staff)
        UserFactory(staff=True)  # not assigned: no email
        say(conversation, customer, "Help please")
        row = pending(staff)
        assert row.recipient_side == Side.STAFF
        assert EmailNotification.objects.count() == 1
        deliver(make_due(row))
        [message] = mailoutbox
        assert message.to == [staff.email]
        assert f"{BASE}/admin/chat/{conversation.pk}/" in message.body

    def test_unassigned_goes_to_all_staff_when_none_online(
        self, conversation, customer, staff, admin, say, deliver, mailoutbox
    ):
        say(conversation, customer, "Anyone there?")
        rows = {row.recipient_id: row for row in EmailNotification.objects.all()}
        assert set(rows) == {staff.pk, admin.pk}
        for row in rows.values():
            deliver(make_due(row))
        assert sorted(m.to[0] for m in mailoutbox) == sorted([staff.email, admin.email])

    def test_unassigned_no_email_while_any_staff_member_is_online(
        self, conversation, customer, staff, admin, say, deliver, mailoutbox
    ):
        say(conversation, customer, "Anyone there?")
        connect(admin, staff=True)
        outcomes = [deliver(make_due(row)) for row in EmailNotification.objects.all()]
        assert sorted(o.reason for o in outcomes) == ["online", "staff_online"]
        assert mailoutbox == []

    def test_a_staff_member_read_it_for_everyone(
        self, conversation, customer, staff, admin, say, deliver, mailoutbox
    ):
        say(conversation, customer, "Anyone there?")
        services.mark_read(conversation, admin)  # the staff side's watermark
        outcomes = [deliver(make_due(row)) for row in EmailNotification.objects.all()]
        assert {o.reason for o in outcomes} == {"read"}
        assert mailoutbox == []

    def test_assigned_to_someone_else_in_between(
        self, conversation, customer, staff, admin, say, deliver, mailoutbox
    ):
        services.assign(conversation, admin, staff)
        say(conversation, customer, "Help")
        services.assign(conversation, admin, admin)
        outcome = deliver(make_due(pending(staff)))
        assert outcome.reason == "not_assigned"
        assert mailoutbox == []


# --- the email itself --------------------------------------------------------------------


class TestTheEmail:
    def test_threading_headers(self, conversation, customer, staff, say, deliver, mailoutbox):
        say(conversation, staff, "one")
        deliver(make_due(pending(customer)))
        say(conversation, staff, "two")
        deliver(make_due(pending(customer)))
        say(conversation, staff, "three")
        deliver(make_due(pending(customer)))
        ids = [header(m, "Message-ID") for m in mailoutbox]
        assert len(set(ids)) == 3 and all(i.startswith("<") and i.endswith(">") for i in ids)
        assert "chat.example.org" in ids[0]
        first, second, third = mailoutbox
        assert header(first, "In-Reply-To") is None and header(first, "References") is None
        assert header(second, "In-Reply-To") == ids[0]
        assert header(second, "References") == ids[0]
        assert header(third, "In-Reply-To") == ids[1]
        assert header(third, "References") == f"{ids[0]} {ids[1]}"
        stored = list(
            EmailNotification.objects.order_by("id").values_list("message_id_header", flat=True)
        )
        assert stored == ids

    def test_threads_are_per_recipient(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        services.assign(conversation, staff, staff)
        say(conversation, staff, "reply")
        deliver(make_due(pending(customer)))
        say(conversation, customer, "thanks")
        deliver(make_due(pending(staff)))
        to_customer, to_staff = mailoutbox
        assert (to_customer.to, to_staff.to) == ([customer.email], [staff.email])
        assert header(to_staff, "In-Reply-To") is None  # the staff member's own thread starts

    def test_html_escapes_message_text(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "<script>alert(1)</script> & <b>bold</b>\nline two")
        deliver(make_due(pending(customer)))
        [message] = mailoutbox
        html = html_part(message)
        assert "<script>" not in html and "<b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
        assert "<br>line two" in html
        # The plain-text part is the text as written.
        assert "<script>alert(1)</script> & <b>bold</b>" in message.body

    def test_customers_see_staff_names_never_logins_or_emails(
        self, conversation, customer, say, deliver, mailoutbox
    ):
        named = UserFactory(staff=True, username="s.login", first_name="Nina", last_name="Helper")
        nameless = UserFactory(staff=True, username="x.login", first_name="", last_name="")
        say(conversation, named, "from Nina")
        say(conversation, nameless, "from the team")
        deliver(make_due(pending(customer)))
        [message] = mailoutbox
        for part in (message.body, html_part(message), message.subject):
            for secret in ("s.login", "x.login", named.email, nameless.email):
                assert secret not in part
        assert "Nina Helper" in message.body
        assert "Support (" in message.body  # the nameless one is the team

    def test_plain_text_parts_are_not_html_escaped(self, say, deliver, mailoutbox, staff):
        customer = UserFactory(customer=True, first_name="Seán", last_name="O'Brien & Co")
        conversation = ConversationFactory(customer=customer)
        services.assign(conversation, staff, staff)
        say(conversation, customer, 'Is "5 < 6" true?')
        deliver(make_due(pending(staff)))
        [message] = mailoutbox
        assert message.subject == "New message from Seán O'Brien & Co"
        assert "Seán O'Brien & Co" in message.body
        assert 'Is "5 < 6" true?' in message.body
        assert "O&#x27;Brien &amp; Co" in html_part(message)

    def test_absolute_links(self, conversation, customer, staff, say, deliver, mailoutbox):
        say(conversation, staff, "reply")
        deliver(make_due(pending(customer)))
        [message] = mailoutbox
        assert f"{BASE}/#support-chat" in message.body
        assert f'href="{BASE}/#support-chat"' in html_part(message)

    def test_customer_url_setting(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_CUSTOMER_URL": "/account/help/"}
        say(conversation, staff, "reply")
        deliver(make_due(pending(customer)))
        assert f"{BASE}/account/help/#support-chat" in mailoutbox[0].body

    def test_links_from_the_current_site(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        settings.SUPPORT_CHAT = {}
        from django.contrib.sites.models import Site

        Site.objects.filter(pk=settings.SITE_ID).update(domain="shop.example.net")
        say(conversation, staff, "reply")
        deliver(make_due(pending(customer)))
        assert "https://shop.example.net/#support-chat" in mailoutbox[0].body

    def test_templates_are_a_setting(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        settings.TEMPLATES = [
            {**settings.TEMPLATES[0], "DIRS": [Path(__file__).resolve().parent / "templates"]}
        ]
        settings.SUPPORT_CHAT = {
            **EMAIL_SETTINGS,
            "EMAIL_TEMPLATES": {"subject": "email_tests/subject.txt"},
        }
        say(conversation, staff, "reply")
        deliver(make_due(pending(customer)))
        [message] = mailoutbox
        assert message.subject == f"Custom: 1 for {customer.first_name} {customer.last_name}"
        assert "reply" in message.body  # the other templates keep their default


# --- people who cannot or do not want to get email -------------------------------------


class TestSkipped:
    def test_no_email_address_is_skipped_logged_and_counted(
        self, conversation, customer, staff, say, deliver, caplog, mailoutbox
    ):
        type(customer).objects.filter(pk=customer.pk).update(email="")
        say(conversation, staff, "reply")
        with caplog.at_level(logging.WARNING, "django_support_chat.notifications"):
            outcome = deliver(make_due(pending(customer)))
        assert (outcome.result, outcome.reason) == ("skipped", "no_email")
        assert "no_email" in caplog.text
        assert mailoutbox == []
        assert EmailNotification.objects.filter(status="skipped", reason="no_email").count() == 1

    def test_the_command_counts_them(self, conversation, customer, staff, say, capsys):
        type(customer).objects.filter(pk=customer.pk).update(email="")
        say(conversation, staff, "reply")
        make_due(pending(customer))
        call_command("support_chat_send_notifications")
        assert "skipped:no_email: 1" in capsys.readouterr().out

    def test_no_longer_staff_or_inactive(
        self, conversation, customer, staff, admin, say, deliver, mailoutbox
    ):
        say(conversation, customer, "hello?")
        type(staff).objects.filter(pk=staff.pk).update(is_staff=False)
        type(admin).objects.filter(pk=admin.pk).update(is_active=False)
        reasons = {deliver(make_due(row)).reason for row in EmailNotification.objects.all()}
        assert reasons == {"not_staff", "inactive"}
        assert mailoutbox == []

    def test_unsubscribed_at_send_time(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "reply")
        row = pending(customer)
        services.update_notification_preferences(customer, email=False)
        outcome = deliver(make_due(row))
        assert outcome.reason == "unsubscribed"
        assert mailoutbox == []

    def test_a_sending_failure_keeps_the_row_for_a_retry(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "reply")
        row = make_due(pending(customer))
        settings.SUPPORT_CHAT = {
            **EMAIL_SETTINGS,
            "EMAIL_TEMPLATES": {"subject": "email_tests/missing.txt"},
        }
        outcome = deliver(row)
        assert outcome.result == "error"
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", 1)
        assert "TemplateDoesNotExist" in row.last_error
        settings.SUPPORT_CHAT = dict(EMAIL_SETTINGS)
        deliver(make_due(row))
        assert len(mailoutbox) == 1


# --- unsubscribe --------------------------------------------------------------------------


def unsubscribe_link(message: Any) -> str:
    value = header(message, "List-Unsubscribe")
    assert value and value.startswith("<") and value.endswith(">")
    return value[1:-1]


class TestUnsubscribe:
    def test_rfc8058_headers_and_one_click_post(
        self, client, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "reply")
        deliver(make_due(pending(customer)))
        [message] = mailoutbox
        assert header(message, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
        link = unsubscribe_link(message)
        assert link.startswith(f"{BASE}/chat/email/unsubscribe/")
        # The plain URL (never RFC 2047 encoded words, which hide it; folding before it is
        # fine, Django 5.2 does that).
        head = raw(message).split(b"\r\n\r\n", 1)[0]
        unfolded = re.sub(rb"\r\n[ \t]+", b" ", head) + b"\r\n"
        assert re.search(
            rb"\r\nList-Unsubscribe: +<" + re.escape(link.encode()) + rb">\r\n", unfolded
        )
        assert link in message.body and link in html_part(message)
        path = link.removeprefix(BASE)

        # GET only asks (mail scanners fetch links).
        page = client.get(path)
        assert page.status_code == 200
        assert b'<form method="post"' in page.content
        assert NotificationPreference.for_user(customer).email is True

        # What a mail client sends for one-click: no cookie, no CSRF token.
        csrf_client = type(client)(enforce_csrf_checks=True)
        done = csrf_client.post(path, {"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        assert NotificationPreference.for_user(customer).email is False
        # Honoured at the next send.
        say(conversation, staff, "another")
        outcome = deliver(make_due(pending(customer)))
        assert outcome.reason == "unsubscribed"
        assert len(mailoutbox) == 1

    @pytest.mark.parametrize(
        "token",
        ["garbage", "eyJ1IjoiMSJ9:forged:signature", "", "a" * 300],
    )
    def test_bad_tokens_400_and_change_nothing(self, client, customer, token):
        for method in (client.get, client.post):
            response = method(f"/chat/email/unsubscribe/{token}/")
            assert response.status_code in (400, 404)
            if token:
                assert response.status_code == 400
        assert not NotificationPreference.objects.exists()

    def test_a_token_signed_for_something_else_is_refused(self, client, customer):
        from django.core import signing

        other_salt = signing.dumps({"u": str(customer.pk)}, salt="something.else")
        assert client.post(f"/chat/email/unsubscribe/{other_salt}/").status_code == 400
        tampered = notifications.unsubscribe_token(customer)[:-2] + "xx"
        assert client.post(f"/chat/email/unsubscribe/{tampered}/").status_code == 400
        assert not NotificationPreference.objects.exists()

    def test_token_of_a_deleted_user(self, client, customer):
        token = notifications.unsubscribe_token(customer)
        customer.delete()
        assert client.post(f"/chat/email/unsubscribe/{token}/").status_code == 400


# --- signals ------------------------------------------------------------------------------


class TestSignal:
    def test_notification_due_after_commit(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        seen: list[dict[str, Any]] = []

        def receiver(**kwargs: Any) -> None:
            seen.append(kwargs)

        signals.notification_due.connect(receiver)
        try:
            say(conversation, staff, "a")
            say(conversation, staff, "b")
            row = make_due(pending(customer))
            assert seen == []
            deliver(row)
        finally:
            signals.notification_due.disconnect(receiver)
        [call] = seen
        assert call["recipient"] == customer and call["channel"] == "email"
        assert call["conversation"] == conversation
        assert [m.text for m in call["messages"]] == ["a", "b"]

    def test_builtin_email_off_leaves_it_to_receivers(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_NOTIFICATIONS": {"builtin_email": False}}
        seen: list[Any] = []

        def receiver(recipient: Any, **kwargs: Any) -> None:
            seen.append(recipient)

        signals.notification_due.connect(receiver)
        try:
            say(conversation, staff, "a")
            row = pending(customer)
            outcome = deliver(make_due(row))
        finally:
            signals.notification_due.disconnect(receiver)
        assert mailoutbox == []
        assert seen == [customer]
        assert (outcome.result, outcome.reason) == ("sent", "handed_off")
        # It counts as the notification: the next one covers only newer messages.
        say(conversation, staff, "b")
        assert [m.text for m in notifications.unread_messages(pending(customer))] == ["b"]


def test_other_conversation_is_independent(customer, staff, say, deliver, mailoutbox):
    first = ConversationFactory(customer=customer)
    second = ConversationFactory(customer=customer)
    say(first, staff, "in one")
    say(second, staff, "in two")
    assert EmailNotification.objects.filter(recipient=customer, status="pending").count() == 2
    for row in EmailNotification.objects.all():
        deliver(make_due(row))
    assert len(mailoutbox) == 2


# --- the Notification rows the email covers ----------------------------------------------


def received(user: Any, message: Any) -> Notification:
    """``user``'s message_received notification of ``message``."""
    return Notification.objects.get(
        user=user, type="message_received", payload__message_id=message.pk
    )


class TestNotificationRows:
    def test_a_sent_email_stamps_exactly_the_rows_it_covers(
        self, conversation, customer, other_customer, staff, admin, say, deliver, mailoutbox
    ):
        services.assign(conversation, admin, staff)  # staff's assignment row, same chat
        first = say(conversation, staff, "First reply")
        second = say(conversation, staff, "Second reply")
        third = say(conversation, staff, "Third reply")
        services.mark_notifications_read(customer, [received(customer, first).pk])
        read_at = received(customer, first).read_at
        elsewhere = ConversationFactory(customer=other_customer)
        other = say(elsewhere, staff, "Elsewhere")
        row = pending(customer)

        assert deliver(make_due(row)).result == "sent"
        later = say(conversation, staff, "After the email")

        row.refresh_from_db()
        [message] = mailoutbox
        # The dismissed notification's message is left out of the batch.
        assert "First reply" not in message.body
        assert "Second reply" in message.body and "Third reply" in message.body
        assert (row.message_count, row.last_message_id) == (2, third.pk)
        assert received(customer, second).emailed_at == row.processed_at
        assert received(customer, third).emailed_at == row.processed_at
        # Read rows, rows of messages after the batch and other users' rows stay.
        assert (received(customer, first).emailed_at, received(customer, first).read_at) == (
            None,
            read_at,
        )
        assert received(customer, later).emailed_at is None
        assert received(other_customer, other).emailed_at is None
        assert Notification.objects.get(user=staff, type="assignment").emailed_at is None
        assert Notification.objects.filter(emailed_at__isnull=False).count() == 2

    def test_the_assignee_rows_are_stamped(
        self, conversation, customer, staff, admin, say, deliver, mailoutbox
    ):
        services.assign(conversation, admin, staff)
        message = say(conversation, customer, "Help please")
        row = pending(staff)
        deliver(make_due(row))
        assert len(mailoutbox) == 1
        row.refresh_from_db()
        assert received(staff, message).emailed_at == row.processed_at

    def test_all_notifications_read_no_email(
        self, conversation, customer, staff, say, deliver, mailoutbox
    ):
        say(conversation, staff, "a")
        say(conversation, staff, "b")
        services.mark_notifications_read(customer)  # the watermark does not move
        outcome = deliver(make_due(pending(customer)))
        assert (outcome.result, outcome.reason) == ("skipped", "read")
        assert mailoutbox == []

    def test_a_skipped_or_failed_email_stamps_nothing(
        self, settings, store, conversation, customer, staff, say, deliver, mailoutbox
    ):
        message = say(conversation, staff, "reply")
        connect(customer)
        assert deliver(make_due(pending(customer))).reason == "online"
        store.clear()
        say(conversation, staff, "again")
        services.update_notification_preferences(customer, email=False)
        assert deliver(make_due(pending(customer))).reason == "unsubscribed"
        services.update_notification_preferences(customer, email=True)
        say(conversation, staff, "and again")
        settings.SUPPORT_CHAT = {
            **EMAIL_SETTINGS,
            "EMAIL_TEMPLATES": {"subject": "email_tests/missing.txt"},
        }
        assert deliver(make_due(pending(customer))).result == "error"
        assert mailoutbox == []
        assert received(customer, message).emailed_at is None
        assert not Notification.objects.filter(emailed_at__isnull=False).exists()

    def test_handed_off_to_receivers_stamps_too(
        self, settings, conversation, customer, staff, say, deliver, mailoutbox
    ):
        settings.SUPPORT_CHAT = {**EMAIL_SETTINGS, "EMAIL_NOTIFICATIONS": {"builtin_email": False}}
        message = say(conversation, staff, "a")
        row = pending(customer)
        assert deliver(make_due(row)).reason == "handed_off"
        row.refresh_from_db()
        assert received(customer, message).emailed_at == row.processed_at

    def test_rest_shows_emailed_at(
        self, client, conversation, customer, staff, say, deliver, mailoutbox
    ):
        message = say(conversation, staff, "reply")
        row = pending(customer)
        client.force_login(customer)
        [before] = client.get(f"{API}notifications/").json()["results"]
        assert before["emailed_at"] is None
        deliver(make_due(row))
        row.refresh_from_db()
        [after] = client.get(f"{API}notifications/").json()["results"]
        assert after["id"] == received(customer, message).pk
        assert after["emailed_at"] == payloads.timestamp(row.processed_at)
        assert after == payloads.notification_data(received(customer, message))
