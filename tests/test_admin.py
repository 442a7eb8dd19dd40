"""Django admin shows chat state and never edits it outside the services."""

from __future__ import annotations

import pytest
from django.test import Client

from django_support_chat.models import AuditEntry, Conversation, Message

from .factories import ConversationFactory, send

pytestmark = pytest.mark.django_db

ADMIN = "/admin/support_chat"
STATE = [
    "customer_id",
    "assigned_to_id",
    "status",
    "last_message_id",
    "last_message_at",
    "unread_user_count",
    "unread_staff_count",
    "user_delivered_id",
    "user_read_id",
    "staff_delivered_id",
    "staff_read_id",
    "updated_at",
]


@pytest.fixture
def admin_client(admin):
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def talk(customer, staff):
    conversation = ConversationFactory(customer=customer)
    send(conversation, customer, "first")
    send(conversation, staff, "reply")
    send(conversation, customer, "second")
    return conversation


def state(conversation):
    return Conversation.objects.filter(pk=conversation.pk).values(*STATE).get()


def test_conversation_change_form_shows_state_read_only(admin_client, talk):
    response = admin_client.get(f"{ADMIN}/conversation/{talk.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("status", "assigned_to", "unread_staff_count", "staff_read_id", "customer"):
        assert f'name="{name}"' not in html, name  # shown, not an input
    assert "first" in html and "second" in html  # the messages, inline
    assert 'name="messages-0-text"' not in html


def test_posting_the_conversation_form_changes_nothing(admin_client, talk, staff, customer):
    before = state(talk)
    data = {
        "customer": str(customer.pk),
        "assigned_to": str(staff.pk),
        "status": "closed",
        "unread_staff_count": "0",
        "unread_user_count": "9",
        "staff_read_id": "0",
        "user_read_id": "0",
        "messages-TOTAL_FORMS": "1",
        "messages-INITIAL_FORMS": "0",
        "messages-0-text": "forged",
        "messages-0-sender_side": "staff",
        "_save": "Save",
    }
    response = admin_client.post(f"{ADMIN}/conversation/{talk.pk}/change/", data)
    assert response.status_code == 403
    assert state(talk) == before
    assert Message.objects.filter(conversation=talk).count() == 3
    assert AuditEntry.objects.filter(action__in=["assign", "close"]).count() == 0


def test_no_conversation_added_in_admin(admin_client, customer):
    assert admin_client.get(f"{ADMIN}/conversation/add/").status_code == 403
    response = admin_client.post(f"{ADMIN}/conversation/add/", {"customer": str(customer.pk)})
    assert response.status_code == 403
    assert not Conversation.objects.exists()


def test_messages_cannot_be_added_changed_or_deleted_alone(admin_client, talk, staff):
    message = Message.objects.filter(conversation=talk).order_by("id").first()
    assert admin_client.get(f"{ADMIN}/message/add/").status_code == 403
    data = {
        "conversation": str(talk.pk),
        "sender": str(staff.pk),
        "sender_side": "staff",
        "text": "new",
        "client_id": "6f1d3c52-0a7e-4c1b-9a64-3f2b8d1e5a90",
    }
    assert admin_client.post(f"{ADMIN}/message/add/", data).status_code == 403
    change = f"{ADMIN}/message/{message.pk}/change/"
    html = admin_client.get(change).content.decode()
    assert "first" in html and 'name="text"' not in html
    assert admin_client.post(change, {**data, "text": "edited"}).status_code == 403
    assert (
        admin_client.post(f"{ADMIN}/message/{message.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    message.refresh_from_db()
    assert (message.text, message.sender_side, message.sender_id) == (
        "first",
        "user",
        talk.customer_id,
    )
    assert Message.objects.filter(conversation=talk).count() == 3


def test_deleting_a_conversation_takes_its_messages(admin_client, talk):
    url = f"{ADMIN}/conversation/{talk.pk}/delete/"
    page = admin_client.get(url).content.decode()
    assert "Are you sure" in page
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_close_and_reopen_actions_go_through_services(
    admin_client, talk, admin, django_capture_on_commit_callbacks
):
    changelist = f"{ADMIN}/conversation/"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            changelist, {"action": "close_conversations", "_selected_action": [talk.pk]}
        )
    assert response.status_code == 302
    assert callbacks  # the service's events (and signal)
    assert state(talk)["status"] == "closed"
    assert list(AuditEntry.objects.filter(action="close").values_list("actor", flat=True)) == [
        admin.pk
    ]
    admin_client.post(changelist, {"action": "reopen_conversations", "_selected_action": [talk.pk]})
    assert state(talk)["status"] == "open"
    assert AuditEntry.objects.filter(action="reopen").count() == 1


def test_email_notifications_are_listed_read_only(
    admin_client, talk, customer, staff, django_capture_on_commit_callbacks
):
    from django_support_chat.models import EmailNotification

    with django_capture_on_commit_callbacks(execute=True):
        send(talk, staff, "more")
    row = EmailNotification.objects.get(recipient=customer)
    listing = admin_client.get(f"{ADMIN}/emailnotification/?status=pending")
    assert listing.status_code == 200
    assert f"/emailnotification/{row.pk}/change/" in listing.content.decode()
    page = admin_client.get(f"{ADMIN}/emailnotification/{row.pk}/change/")
    assert page.status_code == 200
    assert admin_client.post(f"{ADMIN}/emailnotification/{row.pk}/change/", {}).status_code == 403
    assert admin_client.get(f"{ADMIN}/emailnotification/add/").status_code == 403
    row.refresh_from_db()
    assert row.status == "pending"
