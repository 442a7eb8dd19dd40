"""The chat's emails on a host with an email-login user model (``Member``: ``email`` is the
USERNAME_FIELD and the EMAIL_FIELD, ``name`` is optional) and no TASKS setting (Django's
ImmediateBackend, which cannot defer: the command sends)."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_support_chat import services
from django_support_chat.models import Conversation, EmailNotification

from .helpers import STAFF_SECRETS, TEAM_NAME

pytestmark = pytest.mark.django_db

BASE = "https://members.example"


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, "EMAIL_BASE_URL": BASE}


def say(capture: Any, conversation: Conversation, sender: Any, text: str) -> None:
    with capture(execute=True):
        services.send_message(conversation, sender, text, uuid.uuid4())


def send_due() -> None:
    EmailNotification.objects.filter(status="pending").update(
        due_at=timezone.now() - timedelta(seconds=1)
    )
    call_command("support_chat_send_notifications")


def everything(message: Any) -> str:
    [(html, _mimetype)] = message.alternatives
    return "\n".join([message.subject, message.body, str(html), str(message.message())])


def test_customer_email_names_the_team_never_the_staff_login(
    customer, staff, django_capture_on_commit_callbacks, mailoutbox
):
    conversation = Conversation.objects.create(customer=customer)
    say(django_capture_on_commit_callbacks, conversation, staff, "Your parcel is on its way")
    assert mailoutbox == []  # ImmediateBackend cannot defer: nothing early
    send_due()
    [message] = mailoutbox
    assert message.to == ["alice@customers.example"]
    text = everything(message)
    assert "Your parcel is on its way" in message.body
    assert f"{TEAM_NAME} replied" in message.body
    for secret in STAFF_SECRETS:
        assert secret not in text
    unsubscribe = email.message_from_bytes(
        message.message().as_bytes(), policy=email.policy.default
    )["List-Unsubscribe"]
    assert " ".join(str(unsubscribe).split()).startswith(f"<{BASE}/support-mail/unsubscribe/")


def test_a_named_staff_member_is_shown_by_name(
    customer, member, django_capture_on_commit_callbacks, mailoutbox
):
    named = member("dana@staff.example", name="Dana Desk", is_staff=True)
    conversation = Conversation.objects.create(customer=customer)
    say(django_capture_on_commit_callbacks, conversation, named, "Hello from Dana")
    send_due()
    [message] = mailoutbox
    assert "Dana Desk" in message.body
    assert "dana@staff.example" not in everything(message)


def test_staff_email_names_the_customer_and_links_the_inbox(
    customer, nameless_customer, staff, django_capture_on_commit_callbacks, mailoutbox
):
    first = Conversation.objects.create(customer=customer)
    second = Conversation.objects.create(customer=nameless_customer)
    services.assign(first, staff, staff)
    services.assign(second, staff, staff)
    say(django_capture_on_commit_callbacks, first, customer, "Where is my parcel?")
    say(django_capture_on_commit_callbacks, second, nameless_customer, "Hi?")
    send_due()
    by_subject = {m.subject: m for m in mailoutbox}
    assert set(by_subject) == {
        "New message from Alice Archer",
        "New message from bob.baker@customers.example",
    }
    message = by_subject["New message from Alice Archer"]
    assert message.to == [staff.email]
    assert f"{BASE}/backoffice/support/{first.pk}/" in message.body


def test_a_member_without_an_address_is_skipped(
    customer, staff, django_capture_on_commit_callbacks, mailoutbox
):
    type(customer).objects.filter(pk=customer.pk).update(email="")
    conversation = Conversation.objects.create(customer=customer)
    say(django_capture_on_commit_callbacks, conversation, staff, "hello")
    send_due()
    assert mailoutbox == []
    assert EmailNotification.objects.get().reason == "no_email"
