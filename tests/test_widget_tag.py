"""``{% support_chat_widget %}``: what the server renders before any script runs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import Client, RequestFactory
from django.urls import resolve, reverse
from django.utils import translation

from django_support_chat.conf import DEFAULTS

from .factories import ConversationFactory, UserFactory, send

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[1] / "docs"


def render(user, path: str = "/", **extra_context) -> tuple[str, object]:
    request = RequestFactory().get(path)
    request.user = user
    request.resolver_match = resolve(path)  # as the URL resolver sets it on a real request
    html = Template("{% load support_chat %}{% support_chat_widget %}").render(
        Context({"request": request, **extra_context})
    )
    return html, request


def config_of(html: str) -> dict:
    match = re.search(
        r'<script id="support-chat-config" type="application/json">(.*?)</script>', html
    )
    assert match, html
    return json.loads(match.group(1))


def test_anonymous_users_get_nothing():
    html, _ = render(AnonymousUser())
    assert html == ""


def test_no_request_and_no_user_renders_nothing():
    html = Template("{% load support_chat %}{% support_chat_widget %}").render(Context({}))
    assert html == ""


def test_signed_in_user_gets_launcher_config_and_loader():
    user = UserFactory()
    html, _ = render(user)
    assert 'id="support-chat"' in html
    assert "chat-visible-auth" in html
    assert 'class="support-chat-launcher btn btn-primary rounded-circle shadow"' in html
    assert 'aria-haspopup="dialog"' in html and 'aria-expanded="false"' in html
    # The launcher's icon is inline SVG (icons.py): visible without any icon font.
    assert re.search(r'<svg class="sc-icon" viewBox="0 0 16 16"[^>]* aria-hidden="true"', html)
    assert "fa-comments" not in html
    assert "Chat with support" in html  # accessible name and tooltip
    # No unread messages: the badge is there (for live updates) but hidden.
    assert re.search(r'class="support-chat-badge[^"]*bg-danger"\s+hidden>0<', html)
    assert '<script src="/static/support_chat/widget/loader.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/support_chat/widget/launcher.css">' in html
    # The panel is not on the page: it is loaded on demand.
    assert "panel.js" not in html.split('type="application/json">')[0]


def test_config_has_what_the_scripts_need():
    user = UserFactory()
    html, request = render(user)
    config = config_of(html)
    assert config["user"] == user.pk
    assert config["conversation"] is None
    assert config["unread"] == 0
    assert config["api"] == "/api/chat/conversations/"
    assert config["ws"] == "/ws/chat/"
    assert config["assets"] == {
        "js": "/static/support_chat/widget/panel.js",
        "css": "/static/support_chat/widget/panel.css",
        "rt": "/static/support_chat/realtime.js",
    }
    assert config["heartbeat_interval"] == DEFAULTS["HEARTBEAT_INTERVAL"]
    assert config["typing_timeout"] == DEFAULTS["TYPING_TIMEOUT"]
    assert config["max_message_length"] == DEFAULTS["MAX_MESSAGE_LENGTH"]
    assert set(config["texts"]) == set(DEFAULTS["WIDGET_TEXTS"])
    assert config["texts"]["placeholder"] == "Type your message…"
    assert config["texts"]["empty"] == "Ask us anything. We reply quickly."
    # The CSRF token is in the config, and the cookie will be set on this response.
    assert config["csrf"]
    assert config["csrf_cookie"] == "csrftoken"
    assert request.META.get("CSRF_COOKIE_NEEDS_UPDATE") or request.META.get("CSRF_COOKIE")


def test_badge_is_rendered_by_the_server_for_the_latest_conversation(customer, staff):
    old = ConversationFactory(customer=customer)
    send(old, staff, "old reply")
    latest = ConversationFactory(customer=customer)
    send(latest, customer, "hi")
    for text in ("one", "two", "three"):
        send(latest, staff, text)
    html, _ = render(customer)
    config = config_of(html)
    # The widget shows (and clears) the latest conversation: its count is the badge.
    assert config["conversation"] == latest.pk
    assert config["unread"] == 3
    assert re.search(r'bg-danger">3<span class="visually-hidden"> new</span>', html)


def test_badge_caps_at_99(customer, staff):
    conversation = ConversationFactory(customer=customer)
    conversation.unread_user_count = 250
    conversation.save()
    html, _ = render(customer)
    assert 'bg-danger">99+<span' in html
    assert config_of(html)["unread"] == 250


def test_one_query(customer, django_assert_num_queries):
    ConversationFactory(customer=customer)
    with django_assert_num_queries(1):
        render(customer)


def test_staff_get_the_widget_too(staff):
    html, _ = render(staff)
    assert "support-chat-launcher" in html


def test_texts_and_offsets_come_from_settings(settings, customer):
    settings.SUPPORT_CHAT = {
        "WIDGET_TEXTS": {"title": "Help desk", "tooltip": "Talk to us"},
        "WIDGET_OFFSET_DESKTOP": "96px",
        "WIDGET_OFFSET_MOBILE": "72px",
    }
    html, _ = render(customer)
    texts = config_of(html)["texts"]
    assert texts["title"] == "Help desk"
    assert texts["placeholder"] == "Type your message…"  # the other keys keep their defaults
    assert "Talk to us" in html
    assert "--sc-offset: 96px; --sc-offset-mobile: 72px;" in html


def test_texts_are_translated(customer):
    from django.utils.translation import trans_real

    # Add a French translation to the active catalogue: the default texts are lazy, so
    # they follow the language of the request.
    catalog = trans_real.translation("fr")._catalog._catalogs[0]
    catalog["Chat with support"] = "Discuter avec le support"
    try:
        with translation.override("fr"):
            html, _ = render(customer)
    finally:
        del catalog["Chat with support"]
    assert config_of(html)["texts"]["tooltip"] == "Discuter avec le support"
    assert "Discuter avec le support" in html
    assert config_of(html)["lang"] == "fr"


def test_markup_in_texts_cannot_break_out_of_the_json(settings, customer):
    settings.SUPPORT_CHAT = {"WIDGET_TEXTS": {"title": "</script><script>alert(1)</script>"}}
    html, _ = render(customer)
    assert "<script>alert(1)" not in html
    assert config_of(html)["texts"]["title"] == "</script><script>alert(1)</script>"


def test_every_widget_text_is_documented():
    """docs/settings.md lists every WIDGET_TEXTS key with its default."""
    text = (DOCS / "settings.md").read_text()
    section = text.split("## Widget texts", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|$", section, flags=re.M))
    assert rows == {key: str(value) for key, value in DEFAULTS["WIDGET_TEXTS"].items()}


def test_docs_describe_the_widget():
    text = (DOCS / "widget.md").read_text()
    for name in (
        "loader.js",
        "panel.js",
        "panel.css",
        "launcher.css",
        "sessionStorage",
        "localStorage",
    ):
        assert name in text
    for shot in re.findall(r"\((screenshots/[\w-]+\.png)\)", text):
        assert (DOCS / shot).is_file(), shot


# Not on the staff inbox pages (WIDGET_ON_INBOX) ----------------------------------------


def test_nothing_on_the_inbox_pages(staff):
    for path in (reverse("support_chat_inbox:inbox"), "/admin/chat/7/"):
        html, _ = render(staff, path)
        assert html == "", path


def test_rendered_on_every_other_page(staff):
    for path in ("/", "/pricing/", "/api/chat/conversations/", "/admin/"):
        html, _ = render(staff, path)
        assert 'id="support-chat"' in html, path


def test_widget_on_inbox_setting_turns_it_back_on(settings, staff):
    settings.SUPPORT_CHAT = {"WIDGET_ON_INBOX": True}
    html, _ = render(staff, reverse("support_chat_inbox:inbox"))
    assert 'id="support-chat"' in html


def test_inbox_inside_the_sites_layout_has_no_launcher(settings, staff):
    """The reported case: INBOX_BASE_TEMPLATE is the site's layout, which has the tag."""
    settings.SUPPORT_CHAT = {"INBOX_BASE_TEMPLATE": "example/base.html"}
    client = Client()
    client.force_login(staff)
    inbox = client.get(reverse("support_chat_inbox:inbox"))
    assert inbox.status_code == 200
    assert 'id="sc-inbox"' in inbox.text and "Acme Analytics" in inbox.text
    assert 'id="support-chat"' not in inbox.text
    assert 'id="support-chat"' in client.get("/").text  # the rest of the site keeps it
    settings.SUPPORT_CHAT = {**settings.SUPPORT_CHAT, "WIDGET_ON_INBOX": True}
    assert 'id="support-chat"' in client.get(reverse("support_chat_inbox:inbox")).text


# Never breaks the host's pages ----------------------------------------------------------


MANIFEST_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"


def test_missing_manifest_renders_nothing_and_logs_the_fix(settings, tmp_path, customer, caplog):
    """ManifestStaticFilesStorage before collectstatic: static() raises ValueError."""
    settings.STATIC_ROOT = str(tmp_path)  # no staticfiles.json there
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST_STORAGE}}
    settings.DEBUG = False  # with DEBUG the storage serves unhashed names and never raises
    request = RequestFactory().get("/")
    request.user = customer
    template = Template("{% load support_chat %}<main>page</main>{% support_chat_widget %}")
    with caplog.at_level(logging.ERROR, logger="django_support_chat"):
        html = template.render(Context({"request": request}))
    assert html == "<main>page</main>"
    [record] = [r for r in caplog.records if r.name == "django_support_chat"]
    assert record.levelno == logging.ERROR
    assert "collectstatic" in record.getMessage()
    assert "support_chat/widget/" in record.getMessage()  # names the missing file


def test_unset_static_url_renders_nothing_and_logs(settings, customer, caplog):
    """STATIC_URL = None (system check support_chat.W004): the storage cannot be built."""
    settings.STATIC_URL = None
    with caplog.at_level(logging.ERROR, logger="django_support_chat"):
        html, _ = render(customer)
    assert html == ""
    assert "STATIC_URL" in caplog.text
