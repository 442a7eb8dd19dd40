"""The staff inbox inside the host's own base template (``INBOX_BASE_TEMPLATE``), whose
layout renders Django's messages framework: a flash message set by a host view shows once
on a full-page load of every inbox URL, and the chat's own data never leaks into it."""

from __future__ import annotations

import re

import pytest

from .conftest import api_client, page_client
from .helpers import INBOX, PYTHON_REPR, ok, post_message, start_conversation
from .views import FLASH_TEXT

pytestmark = pytest.mark.django_db

FLASH = 'class="alert alert-info host-flash"'
CHAT_TEXTS = ("My invoice 4711 is wrong", "And the date too", "Looking into it now")


@pytest.fixture
def conversation_id(customer, staff):
    client = api_client(customer)
    pk = start_conversation(client)["id"]
    post_message(client, pk, CHAT_TEXTS[0])
    post_message(client, pk, CHAT_TEXTS[1])
    post_message(api_client(staff), pk, CHAT_TEXTS[2])
    post_message(client, pk, "One more thing")  # unread, for ?filter=unread
    return pk


def inbox_urls(pk: int) -> list[str]:
    return [
        INBOX,
        f"{INBOX}{pk}/",
        f"{INBOX}?filter=unread",
        f"{INBOX}?q=x",
        f"{INBOX}?q=invoice",
        f"{INBOX}{pk}/?filter=unread&q=invoice",
    ]


@pytest.mark.parametrize("which", range(6))
def test_flash_message_shows_once_on_a_full_page_load(conversation_id, staff, which):
    url = inbox_urls(conversation_id)[which]
    client = page_client(staff)
    response = client.get("/account/preferences/", {"next": url}, follow=True)
    ok(response)
    assert response.redirect_chain[-1][0] == url
    content = response.content.decode()

    # The host's layout around the inbox.
    assert "<html" in content and "Foreign Host" in content
    assert 'id="sc-inbox"' in content
    # The flash message, exactly once.
    assert content.count(FLASH) == 1, re.findall(r'<div class="alert[^>]*>[^<]*', content)
    assert content.count(FLASH_TEXT) == 1
    # No chat internals rendered as flash messages or anywhere else.
    assert "MessageView(" not in content
    assert "<Message:" not in content and "&lt;Message" not in content
    assert not PYTHON_REPR.search(content), PYTHON_REPR.findall(content)
    for text in CHAT_TEXTS:
        assert not re.search(rf'<div class="alert[^"]*"[^>]*>[^<]*{re.escape(text)}', content)

    # Shown once means consumed: the next load has no flash.
    again = ok(client.get(url)).content.decode()
    assert FLASH not in again and FLASH_TEXT not in again


def test_open_conversation_shows_its_messages_in_the_pane(conversation_id, staff):
    content = ok(page_client(staff).get(f"{INBOX}{conversation_id}/")).content.decode()
    for text in CHAT_TEXTS:
        assert text in content
    assert "Alice Archer" in content


def test_host_pages_render_the_flash_and_the_widget(customer):
    client = page_client(customer)
    response = client.get("/account/preferences/", follow=True)
    content = ok(response).content.decode()
    assert response.redirect_chain[-1][0] == "/account/"
    assert content.count(FLASH) == 1
    assert 'class="support-chat-launcher' in content
    assert 'id="support-chat-config"' in content


def test_the_inbox_requires_staff(customer):
    ok(page_client(customer).get(INBOX), 403)
    anonymous = page_client().get(INBOX)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/?next=")
