"""The chat mounted where the host chooses (tests/urls_custom_mount.py): the staff inbox at
``backoffice/support/``, before Django admin at ``backoffice/``, and the REST API at
``support-api/``. Every URL the pages and the widget use follows the mount."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.template import Context, Template
from django.test import Client, RequestFactory

from django_support_chat.models import Message

from .factories import ConversationFactory, send

pytestmark = pytest.mark.django_db

INBOX = "/backoffice/support/"
API = "/support-api/"
URL_ATTRIBUTE = re.compile(r'\s(?:href|action|hx-get|hx-post|data-[\w-]*url)="([^"]*)"')


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = "tests.urls_custom_mount"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def chat_urls(html: str) -> list[str]:
    """The URLs of the page's links, forms and scripts that lead to the chat."""
    urls = URL_ATTRIBUTE.findall(html)
    return [
        url
        for url in urls
        if not url.startswith("/static/") and ("chat" in url or url.startswith((INBOX, API)))
    ]


@pytest.fixture
def talk(customer):
    conversation = ConversationFactory(customer=customer)
    send(conversation, customer, "Where is my invoice?")
    return conversation


def test_inbox_answers_under_the_hosts_admin_path(staff, talk):
    response = client_for(staff).get(INBOX)
    assert response.status_code == 200
    html = response.text
    assert f'action="{INBOX}"' in html and f'hx-get="{INBOX}"' in html  # search
    assert f'action="{INBOX}bulk/"' in html
    assert f'data-rows-url="{INBOX}rows/"' in html
    assert f'href="{INBOX}{talk.pk}/"' in html  # the conversation's row
    urls = chat_urls(html)
    assert urls, html
    assert all(url.startswith(INBOX) for url in urls), urls


def test_conversation_page_and_its_forms_use_the_mount(staff, talk):
    client = client_for(staff)
    html = client.get(f"{INBOX}{talk.pk}/").text
    assert f'action="{INBOX}{talk.pk}/reply/"' in html
    assert f'hx-post="{INBOX}{talk.pk}/assign/' in html
    assert f'hx-post="{INBOX}{talk.pk}/status/' in html
    assert all(url.startswith(INBOX) for url in chat_urls(html)), chat_urls(html)
    response = client.post(
        f"{INBOX}{talk.pk}/reply/",
        {"text": "Sent this morning", "client_id": str(uuid.uuid4())},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="sc-history",
    )
    assert response.status_code == 200
    assert Message.objects.filter(conversation=talk, text="Sent this morning").exists()


def test_admin_keeps_its_path_and_the_default_paths_are_gone(staff):
    client = client_for(staff)
    assert client.get("/backoffice/").status_code == 200  # Django admin's index
    assert client.get("/admin/chat/").status_code == 404
    assert client.get("/api/chat/conversations/").status_code == 404


def test_anonymous_visitors_go_to_login_and_back_to_the_mount():
    response = Client().get(INBOX)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={INBOX}"


def test_widget_config_points_at_the_custom_api(customer):
    request = RequestFactory().get("/")
    request.user = customer
    html = Template("{% load support_chat %}{% support_chat_widget %}").render(
        Context({"request": request})
    )
    config = json.loads(
        re.search(r'<script id="support-chat-config" type="application/json">(.*?)</script>', html)[
            1
        ]
    )
    assert config["api"] == f"{API}conversations/"
    assert client_for(customer).get(config["api"]).status_code == 200


def test_inbox_in_the_sites_dashboard_links_to_the_mount(settings, staff):
    settings.SUPPORT_CHAT = {"INBOX_BASE_TEMPLATE": "example/dashboard.html"}
    html = client_for(staff).get(INBOX).text
    assert re.search(rf'class="nav-link active" href="{INBOX}"', html)  # the sidebar
    assert 'href="/backoffice/"' in html  # "Django admin"
