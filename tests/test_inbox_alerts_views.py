"""The staff inbox's alert state: rendered into the page (preferences, unread counts, the
sound URL), the preferences endpoint (staff only, CSRF, 400 on bad input) and the unread
counts the page fetches again after a reconnect."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from django_support_chat import services
from django_support_chat.models import Conversation, NotificationPreference

from .factories import ConversationFactory, UserFactory, send

INBOX = "/admin/chat/"
PREFERENCES = "/admin/chat/alerts/preferences/"
UNREAD = "/admin/chat/alerts/unread/"


def client_for(user: Any | None, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def alert_state(response) -> dict[str, Any]:
    html = response.content.decode()
    found = re.search(r'<script id="sc-alert-state" type="application/json">(.*?)</script>', html)
    return json.loads(found.group(1))


def title(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S).group(1).strip()


def attribute(response, element_id: str, name: str) -> str:
    tag = re.search(rf'<[a-z]+ [^>]*id="{element_id}"[^>]*>', response.content.decode()).group(0)
    return re.search(rf'{name}="([^"]*)"', tag).group(1)


@pytest.fixture
def waiting(customer, other_customer, staff):
    """Two conversations with unread customer messages (2 and 1) and one read."""
    first = ConversationFactory(customer=customer)
    send(first, customer, "one")
    send(first, customer, "two")
    second = ConversationFactory(customer=other_customer)
    send(second, other_customer, "three")
    read = ConversationFactory(customer=UserFactory())
    send(read, read.customer, "four")
    services.mark_read(Conversation.objects.get(pk=read.pk), staff)
    return first, second


def test_page_renders_the_alert_state_and_the_count_in_the_title(staff, waiting, settings):
    first, second = waiting
    response = client_for(staff).get(INBOX)
    state = alert_state(response)
    assert state == {
        "sound": False,
        "desktop": False,
        "sound_url": "/static/support_chat/inbox/chime.wav",
        "unread": {str(first.pk): 2, str(second.pk): 1},
        "unread_total": 3,
    }
    assert title(response).startswith("(3) Inbox")
    assert attribute(response, "sc-sound-toggle", "aria-pressed") == "false"
    assert attribute(response, "sc-desktop-toggle", "aria-pressed") == "false"
    assert attribute(response, "sc-toasts", "aria-live") == "polite"

    NotificationPreference.objects.create(user=staff, sound=True, desktop=True)
    settings.SUPPORT_CHAT = {"INBOX_SOUND_URL": "https://cdn.example.com/ding.ogg"}
    response = client_for(staff).get(INBOX)
    state = alert_state(response)
    assert (state["sound"], state["desktop"]) == (True, True)
    assert state["sound_url"] == "https://cdn.example.com/ding.ogg"
    assert attribute(response, "sc-sound-toggle", "aria-pressed") == "true"


def test_no_count_in_the_title_at_zero(staff, db):
    response = client_for(staff).get(INBOX)
    assert title(response) == "Inbox"
    assert alert_state(response)["unread_total"] == 0


def test_sound_file_is_small_and_served(staff, db):
    from django.contrib.staticfiles import finders

    path = finders.find("support_chat/inbox/chime.wav")
    assert path is not None
    with open(path, "rb") as sound:
        data = sound.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert len(data) < 20_000


def test_unread_counts_endpoint(staff, customer, waiting):
    first, second = waiting
    response = client_for(staff).get(UNREAD)
    assert response.status_code == 200
    assert response.json() == {"unread": {str(first.pk): 2, str(second.pk): 1}, "total": 3}
    assert client_for(customer).get(UNREAD).status_code == 403
    assert client_for(None).get(UNREAD).status_code == 302


def test_preferences_are_saved_per_staff_member(staff, admin):
    client = client_for(staff, enforce_csrf_checks=True)
    client.get(INBOX)
    token = client.cookies["csrftoken"].value
    response = client.post(PREFERENCES, {"sound": "true"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json() == {"sound": True, "desktop": False}
    response = client.post(PREFERENCES, {"desktop": "true"}, HTTP_X_CSRFTOKEN=token)
    assert response.json() == {"sound": True, "desktop": True}
    response = client.post(PREFERENCES, {"sound": "false"}, HTTP_X_CSRFTOKEN=token)
    assert response.json() == {"sound": False, "desktop": True}
    preference = NotificationPreference.objects.get(user=staff)
    assert (preference.sound, preference.desktop, preference.email) == (False, True, True)
    # Someone else's are their own.
    assert not NotificationPreference.objects.filter(user=admin).exists()


@pytest.mark.parametrize(
    "data",
    [{}, {"sound": ""}, {"sound": "yes"}, {"desktop": "1"}, {"sound": "TRUE"}, {"other": "true"}],
)
def test_bad_preferences_are_a_400_and_change_nothing(staff, data):
    NotificationPreference.objects.create(user=staff, sound=True)
    response = client_for(staff).post(PREFERENCES, data)
    assert response.status_code == 400
    assert "errors" in response.json()
    preference = NotificationPreference.objects.get(user=staff)
    assert (preference.sound, preference.desktop) == (True, False)


def test_preferences_need_staff_csrf_and_post(staff, customer, db):
    assert client_for(customer).post(PREFERENCES, {"sound": "true"}).status_code == 403
    assert client_for(None).post(PREFERENCES, {"sound": "true"}).status_code == 302
    assert client_for(staff).get(PREFERENCES).status_code == 405
    no_token = client_for(staff, enforce_csrf_checks=True)
    assert no_token.post(PREFERENCES, {"sound": "true"}).status_code == 403
    assert not NotificationPreference.objects.exists()
