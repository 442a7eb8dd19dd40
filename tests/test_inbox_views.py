"""Staff inbox views: access, pages and htmx partials, every action through the services
(audit-logged, bulk included), templates and settings."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.context_processors import PermWrapper
from django.contrib.messages.storage.base import BaseStorage
from django.http import HttpRequest
from django.test import Client
from django.test.signals import template_rendered
from django.urls import reverse

from django_support_chat import events, exceptions, services
from django_support_chat.exceptions import ValidationError
from django_support_chat.inbox.views import customer_email
from django_support_chat.models import AuditEntry, Conversation, Message, Notification

from .factories import ConversationFactory, UserFactory, send
from .htmlcheck import parse
from .urls_inbox_host import FLASH_TEXT

INBOX = "/admin/chat/"


def client_for(user: Any | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def htmx(target: str | None = None, trigger: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"HTTP_HX_REQUEST": "true", **extra}
    if target:
        headers["HTTP_HX_TARGET"] = target
    if trigger:
        headers["HTTP_HX_TRIGGER"] = trigger
    return headers


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


@pytest.fixture
def talk(conversation, customer):
    """Alice's conversation with two unread customer messages."""
    send(conversation, customer, "My invoice is wrong")
    send(conversation, customer, "It says 40 <b>not</b> 30")
    conversation.refresh_from_db()
    return conversation


def audit(conversation: Conversation) -> list[tuple[str, str]]:
    return list(
        AuditEntry.objects.filter(conversation=conversation)
        .order_by("at", "id")
        .values_list("action", "actor__username")
    )


# Access -------------------------------------------------------------------------------------


def all_endpoints(pk: int) -> list[tuple[str, str]]:
    return [
        ("get", INBOX),
        ("get", f"{INBOX}{pk}/"),
        ("get", f"{INBOX}rows/"),
        ("get", f"{INBOX}rows/{pk}/"),
        ("get", f"{INBOX}{pk}/header/"),
        ("get", f"{INBOX}{pk}/messages/?before=10"),
        ("post", f"{INBOX}{pk}/reply/"),
        ("post", f"{INBOX}{pk}/assign/"),
        ("post", f"{INBOX}{pk}/status/"),
        ("post", f"{INBOX}{pk}/read/"),
        ("post", f"{INBOX}{pk}/unread/"),
        ("post", f"{INBOX}bulk/"),
    ]


class TestAccess:
    def test_urls_are_named_in_their_namespace(self):
        assert reverse("support_chat_inbox:inbox") == INBOX
        assert reverse("support_chat_inbox:conversation", args=[5]) == f"{INBOX}5/"

    def test_every_endpoint_sends_anonymous_users_to_login(self, talk):
        for method, url in all_endpoints(talk.pk):
            response = getattr(client_for(None), method)(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith("/login/?next=/admin/chat/"), url

    def test_anonymous_htmx_request_redirects_the_whole_page(self, talk):
        response = client_for(None).get(
            f"{INBOX}rows/", **htmx(HTTP_HX_CURRENT_URL=f"http://testserver{INBOX}?filter=open")
        )
        assert response.status_code == 200
        assert response["HX-Redirect"] == "/login/?next=/admin/chat/%3Ffilter%3Dopen"

    def test_every_endpoint_refuses_customers(self, talk, customer, other_customer):
        for user in (customer, other_customer):
            client = client_for(user)
            for method, url in all_endpoints(talk.pk):
                assert getattr(client, method)(url).status_code == 403, (user, url)
        assert audit(talk) == []
        assert talk.messages.count() == 2

    def test_inactive_staff_is_not_staff(self, talk):
        former = UserFactory(staff=True, is_active=False)
        client = Client()
        client.force_login(former)
        assert client.get(INBOX).status_code in (302, 403)

    def test_custom_staff_predicate_decides(self, talk, customer, settings):
        settings.SUPPORT_CHAT = {"STAFF_PREDICATE": lambda user: user.username == "alice"}
        assert client_for(customer).get(INBOX).status_code == 200

    def test_staff_and_admins_get_the_page(self, staff, admin):
        for user in (staff, admin):
            assert client_for(user).get(INBOX).status_code == 200

    def test_unknown_conversation_is_404(self, staff_client):
        assert staff_client.get(f"{INBOX}999999/").status_code == 404
        assert staff_client.post(f"{INBOX}999999/read/").status_code == 404

    def test_wrong_methods(self, staff_client, talk):
        assert staff_client.post(INBOX).status_code == 405
        assert staff_client.get(f"{INBOX}{talk.pk}/reply/").status_code == 405

    def test_csrf_is_enforced_on_actions(self, staff, talk):
        client = Client(enforce_csrf_checks=True)
        client.force_login(staff)
        assert client.post(f"{INBOX}{talk.pk}/read/").status_code == 403
        page = client.get(INBOX).content.decode()
        # The django-htmx way: every htmx request from the inbox sends the token as a header.
        token = client.cookies["csrftoken"].value
        assert 'hx-headers=\'{"X-CSRFToken": "' in page
        response = client.post(f"{INBOX}{talk.pk}/read/", HTTP_X_CSRFTOKEN=token, **htmx())
        assert response.status_code == 204


# Pages -------------------------------------------------------------------------------------


class TestPage:
    def test_layout(self, staff_client, talk, staff):
        html = staff_client.get(INBOX).content.decode()
        assert ">Inbox</h1>" in html
        for label in ("All", "Unread", "Open", "Assigned to me"):
            assert f">{label}</a>" in html
        assert (
            'class="btn btn-outline-secondary active" aria-current="page" data-filter="all"' in html
        )
        assert 'id="sc-q" type="search" name="q"' in html
        assert f'id="sc-row-{talk.pk}"' in html
        assert 'class="sc-avatar" aria-hidden="true">AA<' in html  # Alice Archer's initials
        assert "It says 40 &lt;b&gt;not&lt;/b&gt; 30" in html  # snippet, escaped
        assert 'class="sc-unread-count">2<' in html
        assert "badge rounded-pill bg-danger" in html
        assert "sc-chip-open" in html
        assert "Select a conversation" in html
        assert "Keyboard shortcuts" in html and 'id="sc-help"' in html
        # htmx from django-htmx, no CDN; the inbox script and CSS from the package.
        # (django-htmx 1.27, the last for Django 4.2, names the file htmx.min.js; later htmx-2.min.js)
        assert re.search(r'<script src="/static/django_htmx/htmx(-2)?\.min\.js"', html)
        assert "/static/support_chat/inbox/inbox.js" in html
        assert "/static/support_chat/inbox/inbox.css" in html
        # Every script and stylesheet is served by this site (the CSRF token is random
        # text and may spell "cdn": look at the addresses only).
        addresses = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert addresses and not [a for a in addresses if "//" in a or "cdn" in a.lower()]
        assert 'data-ws-lobby="/ws/chat/admin/"' in html

    def test_open_conversation(self, staff_client, talk):
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        assert 'id="sc-participant-name" class="fw-semibold text-truncate">Alice Archer<' in html
        assert 'class="dropdown sc-assign"' in html and "dropdown-toggle" in html
        assert 'class="sc-status-switch form-check form-switch' in html
        assert 'id="sc-status-switch" name="status" value="open" checked' in html
        assert 'id="sc-reply" name="text"' in html
        assert "Enter sends, Shift+Enter adds a line." in html
        # The message text is escaped (bleach linkifies only URLs), never raw HTML.
        assert "It says 40 &lt;b&gt;not&lt;/b&gt; 30" in html
        assert "<b>not</b>" not in html
        # Opening it posts read/ once loaded (it has unread messages).
        assert f'hx-post="/admin/chat/{talk.pk}/read/" hx-trigger="load"' in html
        assert 'class="sc-row sc-row list-group-item' not in html
        assert "sc-row-active" in html

    def test_links_in_messages_are_safe(self, staff_client, talk, customer):
        send(talk, customer, 'see https://example.com/a?b=1 and javascript:alert(1) "q"')
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        bubble = html.split('class="sc-bubble">')[-1].split("</div>")[0]
        tags, text = parse(bubble)
        assert [tag for tag, _attrs in tags] == ["a"]
        assert tags[0][1]["href"] == "https://example.com/a?b=1"
        assert tags[0][1]["rel"] == "nofollow noopener noreferrer"
        assert "javascript:alert(1)" in text

    def test_receipts_of_staff_messages(self, staff_client, talk, staff, customer):
        reply = send(talk, staff, "Looking")
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        assert f'id="sc-msg-{reply.pk}" class="sc-msg sc-msg-staff"' in html
        assert 'class="sc-receipt" data-status="sent"' in html
        services.mark_read(talk, customer)
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        assert 'class="sc-receipt" data-status="read"' in html

    def test_closed_conversation_disables_the_composer(self, staff_client, talk, staff):
        services.close(talk, staff)
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        assert 'name="status" value="open">' in html  # the switch is off
        assert "This conversation is closed. Reopen it to reply." in html
        assert 'aria-label="Reply to Alice Archer" disabled' in html

    @pytest.mark.parametrize(
        ("query", "text"),
        [
            ("", "No conversations yet."),
            ("?filter=unread", "You're all caught up"),
            ("?filter=open", "No open conversations."),
            ("?filter=mine", "Nothing is assigned to you."),
            ("?q=zzz", "No conversations match “zzz”."),
        ],
    )
    def test_empty_state_per_filter(self, staff_client, db, query, text):
        html = staff_client.get(INBOX + query).content.decode()
        assert text.replace("'", "&#x27;") in html
        assert 'id="sc-empty" class="sc-empty text-muted text-center small">' in html

    def test_filters_and_search_from_the_url(self, staff_client, talk, staff, other_customer):
        other = ConversationFactory(customer=other_customer)
        send(other, other_customer, "Password reset please")
        services.assign(talk, staff, staff)
        services.mark_read(other, staff)

        def rows(query: str) -> set[int]:
            html = staff_client.get(INBOX + query).content.decode()
            return {c.pk for c in (talk, other) if f'id="sc-row-{c.pk}"' in html}

        assert rows("") == {talk.pk, other.pk}
        assert rows("?filter=unread") == {talk.pk}
        assert rows("?filter=mine") == {talk.pk}
        assert rows("?filter=open") == {talk.pk, other.pk}
        assert rows("?q=password") == {other.pk}
        assert rows("?filter=mine&q=password") == set()
        # Bad values fall back to the defaults: an old bookmark still works.
        assert rows("?filter=nonsense&q=" + "x" * 300) == {talk.pk, other.pk}

    def test_filter_links_keep_search_and_open_conversation(self, staff_client, talk):
        html = staff_client.get(f"{INBOX}{talk.pk}/?q=invoice").content.decode()
        assert f'href="/admin/chat/{talk.pk}/?filter=unread&amp;q=invoice"' in html
        assert f'href="/admin/chat/{talk.pk}/?q=invoice"' in html  # the row link keeps q
        assert 'href="/admin/chat/?q=invoice"' in html  # closing keeps it too

    def test_default_base_template_and_a_custom_one(self, staff_client, settings, db):
        html = staff_client.get(INBOX).content.decode()
        assert html.startswith("<!doctype html>")
        assert "/static/bootstrap/css/bootstrap.min.css" in html  # installed in this project
        settings.SUPPORT_CHAT = {"INBOX_BASE_TEMPLATE": "example/dashboard.html"}
        html = staff_client.get(INBOX).content.decode()
        assert "Acme Analytics staff" in html and "dash-sidebar" in html
        assert 'id="sc-inbox"' in html

    def test_htmx_can_come_from_the_host(self, staff_client, settings, db):
        settings.SUPPORT_CHAT = {"INBOX_INCLUDE_HTMX": False}
        html = staff_client.get(INBOX).content.decode()
        assert "htmx-2.min.js" not in html
        assert "inbox.js" in html

    def test_websocket_prefix_follows_the_setting(self, staff_client, settings, db):
        settings.SUPPORT_CHAT = {"WEBSOCKET_PATH_PREFIX": "/sockets/support/"}
        html = staff_client.get(INBOX).content.decode()
        assert 'data-ws-lobby="/sockets/support/admin/"' in html
        assert 'data-ws-conversation="/sockets/support/admin/0/"' in html

    def test_long_history_shows_the_latest_page_and_loads_earlier(
        self, staff_client, talk, customer, settings
    ):
        settings.SUPPORT_CHAT = {"HISTORY_PAGE_SIZE": 3}
        for n in range(5):
            send(talk, customer, f"extra {n}")
        ids = list(talk.messages.order_by("id").values_list("id", flat=True))  # 7 messages
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        shown = [pk for pk in ids if f'id="sc-msg-{pk}"' in html]
        assert shown == ids[-3:]
        earlier = f"/admin/chat/{talk.pk}/messages/?before={ids[-3]}"
        assert f'hx-get="{earlier}"' in html
        page = staff_client.get(earlier, **htmx()).content.decode()
        assert [pk for pk in ids if f'id="sc-msg-{pk}"' in page] == ids[-6:-3]
        assert f"before={ids[-6]}" in page
        last = staff_client.get(
            f"/admin/chat/{talk.pk}/messages/?before={ids[-6]}"
        ).content.decode()
        assert [pk for pk in ids if f'id="sc-msg-{pk}"' in last] == ids[:1]
        assert "Load earlier" not in last
        assert staff_client.get(f"/admin/chat/{talk.pk}/messages/").status_code == 400


# htmx partials ---------------------------------------------------------------------------


class TestPartials:
    def test_list_target_gets_rows_and_oob_filters(self, staff_client, talk):
        response = staff_client.get(f"{INBOX}?filter=unread", **htmx("sc-list"))
        html = response.content.decode()
        assert response["HX-Push-Url"] == "/admin/chat/?filter=unread"
        assert not html.lstrip().startswith("<!doctype")
        assert f'id="sc-row-{talk.pk}"' in html
        assert 'id="sc-filters" class="sc-filters" hx-swap-oob="true"' in html
        assert 'id="sc-empty"' in html and 'hx-swap-oob="true"' in html
        assert 'id="sc-pane"' not in html

    def test_search_box_replaces_the_history_entry(self, staff_client, talk):
        response = staff_client.get(
            f"{INBOX}?q=invoice&filter=all&c={talk.pk}", **htmx("sc-list", "sc-search")
        )
        assert response["HX-Replace-Url"] == f"/admin/chat/{talk.pk}/?q=invoice"
        assert "HX-Push-Url" not in response
        assert "sc-row-active" in response.content.decode()

    def test_pane_target_gets_the_conversation(self, staff_client, talk):
        response = staff_client.get(f"{INBOX}{talk.pk}/?filter=open", **htmx("sc-pane"))
        html = response.content.decode()
        assert response["HX-Push-Url"] == f"/admin/chat/{talk.pk}/?filter=open"
        assert html.startswith('<div class="sc-conversation card"')
        assert 'id="sc-history"' in html and 'id="sc-composer"' in html
        assert 'id="sc-row-' not in html
        assert f'href="/admin/chat/{talk.pk}/?filter=unread"' in html  # OOB filters

    def test_pane_target_without_conversation_is_the_empty_pane(self, staff_client, talk):
        response = staff_client.get(f"{INBOX}?filter=open", **htmx("sc-pane"))
        assert "Select a conversation" in response.content.decode()
        assert response["HX-Push-Url"] == "/admin/chat/?filter=open"

    def test_history_restore_gets_the_full_page(self, staff_client, talk):
        response = staff_client.get(
            f"{INBOX}{talk.pk}/", **htmx("sc-pane", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
        )
        html = response.content.decode()
        assert html.startswith("<!doctype html>")
        assert 'id="sc-inbox" class="sc-inbox" hx-history-elt' in html

    def test_single_row_for_live_updates(self, staff_client, talk, staff):
        html = staff_client.get(f"{INBOX}rows/{talk.pk}/?c={talk.pk}").content.decode()
        assert html.startswith(f'<div id="sc-row-{talk.pk}"')
        assert "sc-row-active" in html
        # Not matching the list's filter: 204, the page drops it.
        services.assign(talk, staff, staff)
        assert staff_client.get(f"{INBOX}rows/{talk.pk}/?filter=mine").status_code == 200
        services.assign(talk, staff, None)
        assert staff_client.get(f"{INBOX}rows/{talk.pk}/?filter=mine").status_code == 204
        assert staff_client.get(f"{INBOX}rows/{talk.pk}/?q=nothing").status_code == 204
        assert staff_client.get(f"{INBOX}rows/99999/").status_code == 404

    def test_load_more_pages(self, staff_client, settings, db):
        settings.SUPPORT_CHAT = {"INBOX_PAGE_SIZE": 2}
        conversations = [ConversationFactory() for _ in range(5)]
        html = staff_client.get(INBOX).content.decode()
        seen = [c.pk for c in conversations if f'id="sc-row-{c.pk}"' in html]
        assert len(seen) == 2
        more = (
            html.split('class="sc-more')[1].split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
        )
        while more:
            page = staff_client.get(more, **htmx()).content.decode()
            seen += [c.pk for c in conversations if f'id="sc-row-{c.pk}"' in page]
            more = (
                page.split('class="sc-more')[1]
                .split('hx-get="')[1]
                .split('"')[0]
                .replace("&amp;", "&")
                if 'class="sc-more' in page
                else None
            )
        assert sorted(seen) == sorted(c.pk for c in conversations)
        assert len(seen) == 5
        assert staff_client.get(f"{INBOX}rows/?cursor=bogus").status_code == 400

    def test_header_partial(self, staff_client, talk, staff):
        services.assign(talk, staff, staff)
        html = staff_client.get(f"{INBOX}{talk.pk}/header/", **htmx()).content.decode()
        assert html.startswith('<header id="sc-pane-header"')
        assert f'data-assigned-id="{staff.pk}"' in html
        assert "Assign to me" not in html  # already mine


# Actions ------------------------------------------------------------------------------------


class TestReply:
    def post(self, client, conversation, text="Hello from support", client_id=None, **headers):
        return client.post(
            f"{INBOX}{conversation.pk}/reply/",
            {"text": text, "client_id": str(client_id or uuid.uuid4())},
            **headers,
        )

    def test_htmx_reply_returns_the_message_partial(self, staff_client, talk, staff):
        response = self.post(staff_client, talk, "Sorry!\nFixed <now>", **htmx())
        assert response.status_code == 200
        message = talk.messages.latest("id")
        assert message.text == "Sorry!\nFixed <now>" and message.sender == staff
        html = response.content.decode()
        assert f'id="sc-msg-{message.pk}" class="sc-msg sc-msg-staff"' in html
        assert "Sorry!\nFixed &lt;now&gt;" in html
        assert json.loads(response["HX-Trigger"]) == {"sc:changed": {"ids": [talk.pk]}}
        assert audit(talk) == [("reply", "sam")]

    def test_resend_with_the_same_client_id_stores_once(self, staff_client, talk):
        client_id = uuid.uuid4()
        self.post(staff_client, talk, client_id=client_id, **htmx())
        self.post(staff_client, talk, client_id=client_id, **htmx())
        assert talk.messages.filter(sender_side="staff").count() == 1

    def test_without_htmx_redirects_back(self, staff_client, talk):
        response = self.post(staff_client, talk)
        assert response.status_code == 302
        assert response["Location"] == f"/admin/chat/{talk.pk}/"

    @pytest.mark.parametrize("text", ["", "   ", "x" * 5001, "bad\x00char"])
    def test_invalid_text_is_422_in_the_alert_area(self, staff_client, talk, text):
        response = self.post(staff_client, talk, text, **htmx())
        assert response.status_code == 422
        assert response["HX-Retarget"] == "#sc-alerts"
        assert 'class="alert alert-danger' in response.content.decode()
        assert not talk.messages.filter(sender_side="staff").exists()

    def test_missing_client_id_is_422(self, staff_client, talk):
        response = staff_client.post(f"{INBOX}{talk.pk}/reply/", {"text": "hi"}, **htmx())
        assert response.status_code == 422

    def test_closed_conversation_is_409(self, staff_client, talk, staff):
        services.close(talk, staff)
        response = self.post(staff_client, talk, **htmx())
        assert response.status_code == 409
        assert "Reopen it before replying" in response.content.decode()


class TestAssignStatusReadUnread:
    def test_assign_to_me_to_a_colleague_and_unassign(self, staff_client, talk, staff, admin):
        url = f"{INBOX}{talk.pk}/assign/"
        response = staff_client.post(url, {"assignee": "me"}, **htmx())
        assert response.status_code == 200
        assert response.content.decode().startswith('<header id="sc-pane-header"')
        assert json.loads(response["HX-Trigger"]) == {"sc:changed": {"ids": [talk.pk]}}
        assert Conversation.objects.get(pk=talk.pk).assigned_to == staff
        staff_client.post(url, {"assignee": str(admin.pk)}, **htmx())
        assert Conversation.objects.get(pk=talk.pk).assigned_to == admin
        staff_client.post(url, {"assignee": ""}, **htmx())
        assert Conversation.objects.get(pk=talk.pk).assigned_to is None
        assert audit(talk) == [("assign", "sam"), ("assign", "sam"), ("unassign", "sam")]

    @pytest.mark.parametrize("assignee", ["customer", "nobody", "12x", "-1", "²"])
    def test_only_staff_can_be_assigned(self, staff_client, talk, customer, assignee):
        value = str(customer.pk) if assignee == "customer" else assignee
        value = "999999" if assignee == "nobody" else value
        response = staff_client.post(f"{INBOX}{talk.pk}/assign/", {"assignee": value}, **htmx())
        assert response.status_code == 422
        assert Conversation.objects.get(pk=talk.pk).assigned_to is None
        assert audit(talk) == []

    def test_switch_and_buttons_close_and_reopen(self, staff_client, talk):
        url = f"{INBOX}{talk.pk}/status/"
        # The switch posts a hidden "closed" and, when checked, "open" after it.
        response = staff_client.post(url, {"status": ["closed"]}, **htmx())
        assert response.status_code == 200
        assert 'data-status="closed"' in response.content.decode()
        assert Conversation.objects.get(pk=talk.pk).status == "closed"
        staff_client.post(url, {"status": ["closed", "open"]}, **htmx())
        assert Conversation.objects.get(pk=talk.pk).status == "open"
        staff_client.post(url, {"status": "closed"}, **htmx())
        staff_client.post(url, {"status": "open"}, **htmx())
        assert staff_client.post(url, {"status": "pending"}, **htmx()).status_code == 422
        assert audit(talk) == [
            ("close", "sam"),
            ("reopen", "sam"),
            ("close", "sam"),
            ("reopen", "sam"),
        ]

    def test_mark_read_and_unread(self, staff_client, talk):
        response = staff_client.post(f"{INBOX}{talk.pk}/read/", **htmx())
        assert response.status_code == 204
        assert json.loads(response["HX-Trigger"]) == {"sc:changed": {"ids": [talk.pk]}}
        talk.refresh_from_db()
        assert talk.unread_staff_count == 0
        assert talk.staff_read_id == talk.messages.latest("id").pk
        response = staff_client.post(f"{INBOX}{talk.pk}/unread/", **htmx())
        assert response.status_code == 200
        assert "Select a conversation" in response.content.decode()  # the pane closes
        assert response["HX-Push-Url"] == "/admin/chat/"
        talk.refresh_from_db()
        assert talk.unread_staff_count == 1
        assert audit(talk) == [("mark_read", "sam"), ("mark_unread", "sam")]

    def test_mark_unread_keeps_receipts_and_the_unread_filter_works(
        self, staff_client, talk, customer, staff
    ):
        from rest_framework.test import APIClient

        staff_client.post(f"{INBOX}{talk.pk}/read/", **htmx())
        read_id = Conversation.objects.get(pk=talk.pk).staff_read_id
        staff_client.post(f"{INBOX}{talk.pk}/unread/", **htmx())
        talk.refresh_from_db()
        assert (talk.unread_staff_count, talk.staff_read_id) == (1, read_id)
        html = staff_client.get(f"{INBOX}?filter=unread").content.decode()
        assert f'id="sc-row-{talk.pk}"' in html
        assert 'class="sc-unread-count">1<' in html
        # The customer's own messages still show "read" (the watermark did not move back).
        api = APIClient()
        api.force_authenticate(customer)
        page = api.get(f"/api/chat/conversations/{talk.pk}/messages/").json()["results"]
        assert {m["status"] for m in page if m["sender_side"] == "user"} == {"read"}
        staff_api = APIClient()
        staff_api.force_authenticate(staff)
        assert staff_api.get("/api/chat/unread_count").json()["staff_unread_conversations"] == 1
        # Opening it again reads it: out of the filter, count 0.
        staff_client.post(f"{INBOX}{talk.pk}/read/", **htmx())
        html = staff_client.get(f"{INBOX}?filter=unread").content.decode()
        assert f'id="sc-row-{talk.pk}"' not in html
        assert Conversation.objects.get(pk=talk.pk).unread_staff_count == 0

    def test_actions_without_htmx_redirect_and_keep_the_state(self, staff_client, talk):
        response = staff_client.post(
            f"{INBOX}{talk.pk}/assign/?filter=open&q=inv", {"assignee": "me"}
        )
        assert response.status_code == 302
        assert response["Location"] == f"/admin/chat/{talk.pk}/?filter=open&q=inv"
        response = staff_client.post(f"{INBOX}{talk.pk}/unread/?filter=open")
        assert response["Location"] == "/admin/chat/?filter=open"

    def test_actions_publish_events_for_other_staff(
        self, staff_client, talk, channel_layer, django_capture_on_commit_callbacks
    ):
        lobby = channel_layer.subscribe("support_chat.staff")
        with django_capture_on_commit_callbacks(execute=True):
            staff_client.post(f"{INBOX}{talk.pk}/assign/", {"assignee": "me"}, **htmx())
            staff_client.post(f"{INBOX}{talk.pk}/status/", {"status": "closed"}, **htmx())
        changes = [(e["type"], e["data"].get("change")) for e in channel_layer.drain(lobby)]
        assert changes == [("conversation:updated", "assigned"), ("conversation:updated", "closed")]


class TestBulk:
    @pytest.fixture
    def three(self, customer, other_customer):
        carol = UserFactory(username="carol")
        result = []
        for user in (customer, other_customer, carol):
            conversation = ConversationFactory(customer=user)
            send(conversation, user, "help")
            result.append(conversation)
        return result

    def test_mark_several_read(self, staff_client, three, staff):
        ids = [c.pk for c in three[:2]]
        response = staff_client.post(f"{INBOX}bulk/", {"action": "read", "ids": ids}, **htmx())
        assert response.status_code == 200
        assert "Marked 2 conversations read." in response.content.decode()
        assert json.loads(response["HX-Trigger"]) == {"sc:changed": {"ids": sorted(ids)}}
        counts = dict(Conversation.objects.values_list("pk", "unread_staff_count"))
        assert counts == {three[0].pk: 0, three[1].pk: 0, three[2].pk: 1}
        for conversation in three[:2]:
            assert audit(conversation) == [("mark_read", "sam")]
        assert audit(three[2]) == []

    def test_assign_several(self, staff_client, three, admin):
        ids = [c.pk for c in three]
        response = staff_client.post(
            f"{INBOX}bulk/", {"action": "assign", "ids": ids, "assignee": str(admin.pk)}, **htmx()
        )
        assert "Assigned 3 conversations to Ada Admin." in response.content.decode()
        assert set(Conversation.objects.values_list("assigned_to", flat=True)) == {admin.pk}
        for conversation in three:
            entry = AuditEntry.objects.get(conversation=conversation)
            assert (entry.action, entry.actor.username, entry.details["assignee"]) == (
                "assign",
                "sam",
                admin.pk,
            )
        response = staff_client.post(
            f"{INBOX}bulk/", {"action": "assign", "ids": ids[:1], "assignee": ""}, **htmx()
        )
        assert "Unassigned 1 conversation." in response.content.decode()
        assert AuditEntry.objects.filter(action="unassign").count() == 1

    @pytest.mark.parametrize(
        "data",
        [
            {"action": "read"},  # nothing selected
            {"action": "delete", "ids": ["1"]},
            {"action": "read", "ids": ["x"]},
            {"action": "read", "ids": [str(n) for n in range(1, 203)]},
            {"action": "assign", "ids": ["1"], "assignee": "nobody"},
        ],
    )
    def test_invalid_bulk_requests(self, staff_client, three, data):
        response = staff_client.post(f"{INBOX}bulk/", data, **htmx())
        assert response.status_code == 422
        assert AuditEntry.objects.count() == 0

    def test_assigning_to_a_customer_is_refused(self, staff_client, three, customer):
        data = {"action": "assign", "ids": [three[0].pk], "assignee": str(customer.pk)}
        assert staff_client.post(f"{INBOX}bulk/", data, **htmx()).status_code == 422
        assert Conversation.objects.filter(assigned_to__isnull=False).count() == 0

    @staticmethod
    def failing_on_second(real):
        calls = []

        def service(conversation, *args, **kwargs):
            calls.append(conversation.pk)
            if len(calls) == 2:
                raise exceptions.PermissionDenied("Not allowed for this one.")
            return real(conversation, *args, **kwargs)

        return service

    def state(self):
        return list(
            Conversation.objects.order_by("pk").values_list(
                "pk", "unread_staff_count", "staff_read_id", "assigned_to"
            )
        )

    @pytest.mark.parametrize("action", ["read", "assign"])
    def test_failure_halfway_changes_nothing(
        self, staff_client, three, staff, action, channel_layer, django_capture_on_commit_callbacks
    ):
        lobby = channel_layer.subscribe(events.STAFF_GROUP)
        before = self.state()
        name = "mark_read" if action == "read" else "assign"
        data = {"action": action, "ids": [c.pk for c in three], "assignee": "me"}
        with (
            mock.patch.object(services, name, self.failing_on_second(getattr(services, name))),
            django_capture_on_commit_callbacks(execute=True) as callbacks,
        ):
            response = staff_client.post(f"{INBOX}bulk/", data, **htmx())
        assert response.status_code == 403
        assert "Not allowed for this one. Nothing was changed." in response.content.decode()
        assert response["HX-Retarget"] == "#sc-alerts"
        assert self.state() == before  # the first conversation was rolled back too
        assert AuditEntry.objects.count() == 0
        assert not Notification.objects.filter(type=Notification.Type.ASSIGNMENT).exists()
        assert callbacks == []  # no event, no signal
        assert channel_layer.drain(lobby) == []

    def test_invalid_assignee_halfway_is_422(self, staff_client, three, staff):
        before = self.state()
        real = services.assign
        calls = []

        def assign(conversation, actor, assignee):
            calls.append(conversation.pk)
            if len(calls) == 3:
                raise ValidationError({"assignee": ["No longer staff."]})
            return real(conversation, actor, assignee)

        data = {"action": "assign", "ids": [c.pk for c in three], "assignee": "me"}
        with mock.patch.object(services, "assign", assign):
            response = staff_client.post(f"{INBOX}bulk/", data, **htmx())
        assert response.status_code == 422
        assert "No longer staff. Nothing was changed." in response.content.decode()
        assert self.state() == before
        assert AuditEntry.objects.count() == 0

    def test_a_deleted_conversation_changes_nothing(self, staff_client, three):
        before = self.state()
        ids = [c.pk for c in three] + [three[-1].pk + 100]
        response = staff_client.post(f"{INBOX}bulk/", {"action": "read", "ids": ids}, **htmx())
        assert response.status_code == 409
        assert "no longer exist. Nothing was changed." in response.content.decode()
        assert self.state() == before
        assert AuditEntry.objects.count() == 0

    def test_without_htmx_redirects(self, staff_client, three):
        response = staff_client.post(f"{INBOX}bulk/", {"action": "read", "ids": [three[0].pk]})
        assert response.status_code == 302
        assert response["Location"] == "/admin/chat/"


def test_messages_of_deleted_users_still_render(staff_client, talk, customer):
    Message.objects.filter(conversation=talk).update(sender=None)
    html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
    assert "Deleted user" in html


# Inside the host's layout: the template context is the chat's own -------------------------

HOST_TEMPLATES = Path(__file__).resolve().parent / "templates"
# What Django and the host's context processors put in every context: the inbox must not
# shadow any of these, and every other name it uses starts with ``sc_``.
NOT_THE_CHATS = {
    "True",
    "False",
    "None",
    "csrf_token",
    "request",
    "user",
    "perms",
    "messages",
    "DEFAULT_MESSAGE_LEVELS",
    "forloop",
    "block",
}
REPRS = ("MessageView(", "Row(", "StaffOption(", "InboxState(", "<Message", "&lt;Message")


@pytest.fixture
def host_layout(settings):
    """The inbox inside a host layout that renders flash messages, ``user`` and ``perms``."""
    settings.ROOT_URLCONF = "tests.urls_inbox_host"
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [HOST_TEMPLATES, *settings.TEMPLATES[0]["DIRS"]]}
    ]
    settings.SUPPORT_CHAT = {"INBOX_BASE_TEMPLATE": "inbox_host/layout.html"}


@pytest.fixture
def rendered_contexts():
    """Every (template name, flattened context) rendered while the test runs."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def receiver(sender, template, context, **kwargs):
        seen.append((template.name or "", context.flatten()))

    template_rendered.connect(receiver)
    yield seen
    template_rendered.disconnect(receiver)


def full_page_urls(pk: int) -> list[str]:
    return [
        INBOX,
        f"{INBOX}{pk}/",
        f"{INBOX}?filter=unread",
        f"{INBOX}?filter=mine",
        f"{INBOX}?q=invoice",
        f"{INBOX}?q=nothing-matches",
        f"{INBOX}{pk}/?filter=open&q=invoice",
    ]


class TestInsideTheHostLayout:
    @pytest.fixture
    def busy(self, talk, admin, staff, customer):
        """Alice's conversation with staff replies, assigned, plus a second conversation."""
        send(talk, staff, "Looking into it")
        services.assign(talk, staff, staff)
        services.mark_read(talk, customer)
        send(talk, customer, "Thanks")
        send(ConversationFactory(), staff, "Hello")
        return talk

    @pytest.mark.parametrize("which", range(7))
    def test_flash_messages_user_and_perms_stay_the_hosts(self, host_layout, busy, admin, which):
        url = full_page_urls(busy.pk)[which]
        client = client_for(admin)
        response = client.get("/host/flash/", {"next": url}, follow=True)
        assert response.status_code == 200
        assert response.redirect_chain == [(url, 302)]
        html = response.content.decode()
        assert "· Host dashboard</title>" in html and 'id="sc-inbox"' in html
        # The host's flash message, exactly once, and nothing else as a flash message.
        assert html.count('<div class="host-flash">') == 1
        assert f'<div class="host-flash">{FLASH_TEXT}</div>' in html
        # The layout's user, perms and request are still the host's.
        assert '<header class="host-user">ada</header>' in html
        assert '<span class="host-perms">may-view</span>' in html
        assert f'<span class="host-path">{url.split("?")[0]}</span>' in html
        for text in REPRS:
            assert text not in html, text
        # Shown means consumed: the next load has no flash.
        again = client.get(url).content.decode()
        assert 'class="host-flash"' not in again

    def test_the_default_base_template_renders_no_chat_internals_either(self, busy, staff):
        html = client_for(staff).get(f"{INBOX}{busy.pk}/").content.decode()
        for text in REPRS:
            assert text not in html, text

    def test_every_context_name_of_every_inbox_render_is_prefixed(
        self, host_layout, busy, admin, rendered_contexts
    ):
        client = client_for(admin)
        pk = busy.pk
        first = busy.messages.order_by("id").first()
        requests = [
            *[("get", url, None, {}) for url in full_page_urls(pk)],
            ("get", INBOX, None, htmx("sc-list")),
            ("get", f"{INBOX}{pk}/", None, htmx("sc-pane")),
            ("get", f"{INBOX}{pk}/", None, htmx("sc-pane", HTTP_HX_HISTORY_RESTORE_REQUEST="1")),
            ("get", f"{INBOX}rows/", None, {}),
            ("get", f"{INBOX}rows/{pk}/?c={pk}", None, {}),
            ("get", f"{INBOX}{pk}/header/", None, htmx()),
            ("get", f"{INBOX}{pk}/messages/?before={first.pk + 2}", None, htmx()),
            ("post", f"{INBOX}{pk}/reply/", {"text": "Done", "client_id": uuid.uuid4()}, htmx()),
            ("post", f"{INBOX}{pk}/reply/", {"text": ""}, htmx()),  # the error alert
            ("post", f"{INBOX}{pk}/assign/", {"assignee": "me"}, htmx()),
            ("post", f"{INBOX}{pk}/status/", {"status": "closed"}, htmx()),
            ("post", f"{INBOX}{pk}/unread/", None, htmx()),
            ("post", f"{INBOX}bulk/", {"action": "read", "ids": [pk]}, htmx()),
        ]
        for method, url, data, headers in requests:
            response = getattr(client, method)(url, data, **headers)
            assert response.status_code in (200, 422), (url, response.status_code)
        templates = {name for name, _context in rendered_contexts}
        assert "support_chat/inbox/page.html" in templates
        assert "support_chat/inbox/partials/row.html" in templates
        assert "support_chat/inbox/partials/message.html" in templates
        assert "support_chat/inbox/partials/alert.html" in templates
        for name, context in rendered_contexts:
            if not name.startswith("support_chat/inbox/") and name != "inbox_host/layout.html":
                continue
            stray = {key for key in context if key not in NOT_THE_CHATS}
            assert {key for key in stray if not key.startswith("sc_")} == set(), name
            # The names the context processors own still hold their values.
            assert context["user"] == admin, name
            assert isinstance(context["messages"], BaseStorage), name
            assert isinstance(context["request"], HttpRequest), name
            assert isinstance(context["perms"], PermWrapper), name


class TestNames:
    def test_people_are_named_by_the_names_module(self, staff_client, talk, staff, admin):
        services.assign(talk, staff, admin)
        nameless = UserFactory(staff=True, username="kim", first_name="", last_name="")
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        # The customer by customer_name, with the email address from the model's EMAIL_FIELD.
        assert ">Alice Archer<" in html
        assert "alice@example.com · " in html
        # Staff by staff_label: the full name, or the login when there is none (colleagues
        # must tell each other apart), in the assignment menus, the row and the header.
        assert 'class="sc-assignee">Ada Admin<' in html
        assert "</svg> Ada Admin</span>" in html  # the row's assignee
        assert re.search(rf'value="{nameless.pk}"[^>]*>kim<', html)
        assert re.search(rf'data-assignee="{nameless.pk}"[^>]*\n[^>]*>kim<', html)
        assert re.search(rf'value="{staff.pk}" selected>Sam Support \(you\)<', html)

    def test_no_email_when_the_model_has_none_or_it_is_the_name(self):
        class NoEmail:
            pk = 1

        class LoginIsEmail:
            pk = 2
            EMAIL_FIELD = "login"
            login = "dana@example.com"

            @classmethod
            def get_email_field_name(cls):
                return cls.EMAIL_FIELD

        assert customer_email(NoEmail()) == ""
        assert customer_email(None) == ""
        assert customer_email(LoginIsEmail(), "Dana") == "dana@example.com"
        # The name shown already is the address (names fell back to the login): once only.
        assert customer_email(LoginIsEmail(), "dana@example.com") == ""


# Icons -----------------------------------------------------------------------------------


class TestIcons:
    def test_inbox_icons_are_inline_svg_and_need_no_font(self, staff_client, talk, staff):
        send(talk, staff, "Looking")
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        # Neither an icon class nor Font Awesome's stylesheet (\b: a UUID may hold "fa-").
        assert not re.search(r"\bfa[srb]?[ -]", html)
        assert "fontawesomefree" not in html
        assert html.count('<svg class="sc-icon') >= 8
        assert re.search(r'<span class="input-group-text"><svg class="sc-icon"', html)  # search
        assert re.search(r'<button type="submit" class="btn btn-primary"[^>]*><svg', html)  # send
        # inbox.js clones its icons (live receipts) from the page: no shapes in the script.
        template = html.split('<template id="sc-icons">')[1].split("</template>")[0]
        assert 'data-sc-icon="check"' in template and 'data-sc-icon="check-double"' in template

    def test_fontawesome_mode(self, staff_client, talk, staff, settings):
        settings.SUPPORT_CHAT = {"ICONS": "fontawesome"}
        send(talk, staff, "Looking")
        html = staff_client.get(f"{INBOX}{talk.pk}/").content.decode()
        assert "<svg" not in html
        assert '<i class="fas fa-search" aria-hidden="true"></i>' in html
        assert '<i class="fas fa-paper-plane" aria-hidden="true"></i>' in html
        assert '<i class="fas fa-check" aria-hidden="true" data-sc-icon="check"></i>' in html
        # The default base template links the package's Font Awesome only in this mode.
        assert "/static/fontawesomefree/css/all.min.css" in html
