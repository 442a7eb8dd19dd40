"""Message HTML is rendered once, when the message is stored (``Message.html``): reads
return the stored copy and never run bleach; rows without it (raw inserts) are rendered on
read; migration 0006 renders the rows that existed before it, in batches."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator

import pytest
from bleach.linkifier import Linker
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from django_support_chat import payloads
from django_support_chat.models import Message, Side
from django_support_chat.text import render_text

from .conftest import API
from .factories import MessageFactory, send

BEFORE = ("support_chat", "0005_notification_emailed_at")
AFTER = ("support_chat", "0006_message_html")


@pytest.fixture
def linkify_calls(monkeypatch) -> Iterator[list[str]]:
    """Every call of the real ``Linker.linkify`` (any thread's linker), in order. The
    render cache is emptied first, so a render cannot hide behind it."""
    calls: list[str] = []
    real = Linker.linkify

    def counting(self: Linker, text: str) -> str:
        calls.append(text)
        return real(self, text)

    monkeypatch.setattr(Linker, "linkify", counting)
    render_text.cache_clear()
    yield calls
    render_text.cache_clear()


@pytest.mark.django_db
def test_send_stores_the_rendered_html(conversation, customer, linkify_calls):
    message = send(conversation, customer, "  see https://example.com/a?b=1 <b>now</b>  ")
    stored = Message.objects.get(pk=message.pk)
    assert stored.text == "see https://example.com/a?b=1 <b>now</b>"  # cleaned, then rendered
    assert stored.html == render_text(stored.text)
    assert 'href="https://example.com/a?b=1"' in stored.html
    assert "&lt;b&gt;now&lt;/b&gt;" in stored.html and "<b>" not in stored.html
    assert linkify_calls == ["see https://example.com/a?b=1 &lt;b&gt;now&lt;/b&gt;"]  # once


@pytest.mark.django_db
def test_the_payload_is_the_stored_html(conversation, customer, customer_api):
    message = send(conversation, customer, "hello https://example.com")
    # Not what render_text would give today: proves the stored copy is what is read.
    Message.objects.filter(pk=message.pk).update(html="stored <i>copy</i>")
    message.refresh_from_db()
    assert payloads.message_data(message)["html"] == "stored <i>copy</i>"
    rows = customer_api.get(f"{API}conversations/{conversation.pk}/messages/").json()["results"]
    assert [row["html"] for row in rows] == ["stored <i>copy</i>"]


@pytest.mark.django_db
def test_a_row_without_html_is_rendered_on_read(conversation, customer, linkify_calls):
    raw = Message.objects.create(
        conversation=conversation,
        sender=customer,
        sender_side=Side.USER,
        text="old <b> https://example.com",
        client_id=uuid.uuid4(),
        seq=1,
    )
    assert raw.html == ""
    html = payloads.message_data(raw)["html"]
    assert html == render_text("old <b> https://example.com")
    assert html.startswith("old &lt;b&gt; <a href=")
    assert len(linkify_calls) == 1


@pytest.mark.django_db
def test_a_rest_history_page_of_distinct_messages_never_runs_bleach(
    conversation, customer, staff, customer_api, linkify_calls
):
    texts = [f"message {i}: https://example.com/{i} <b>{i}</b>" for i in range(60)]
    for i, text in enumerate(texts):
        send(conversation, staff if i % 2 else customer, text)
    assert len(linkify_calls) == len(texts)  # once per send
    linkify_calls.clear()
    render_text.cache_clear()

    url = f"{API}conversations/{conversation.pk}/messages/"
    pages = []
    while url:
        response = customer_api.get(url)
        assert response.status_code == 200
        pages.append(response.json())
        url = pages[-1]["next"]
    rows = [row for page in pages for row in page["results"]]
    assert len(pages) == 2 and len(rows) == 60  # HISTORY_PAGE_SIZE 50
    assert linkify_calls == []
    by_text = {row["text"]: row["html"] for row in rows}
    assert by_text == {text: render_text(text) for text in texts}


@pytest.mark.django_db
def test_the_staff_inbox_shows_the_stored_html_without_running_bleach(
    conversation, customer, staff, linkify_calls
):
    texts = [f"inbox {i}: https://example.com/{i} <b>{i}</b>" for i in range(30)]
    last = [send(conversation, customer, text) for text in texts][-1]
    linkify_calls.clear()
    render_text.cache_clear()
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/chat/{conversation.pk}/")
    history = client.get(f"/admin/chat/{conversation.pk}/messages/?before={last.pk}")
    assert page.status_code == history.status_code == 200
    assert linkify_calls == []
    for response, shown in ((page, texts), (history, texts[:-1])):
        html = response.content.decode()
        assert all(render_text(text) in html for text in shown)
        assert "<b>" not in html


@pytest.mark.django_db
def test_factory_rows_carry_html(conversation):
    message = MessageFactory(conversation=conversation, text="a https://x.test b")
    assert Message.objects.get(pk=message.pk).html == render_text("a https://x.test b")


# -- migration 0006 --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_renders_existing_messages_in_batches(monkeypatch):
    migration = importlib.import_module("django_support_chat.migrations.0006_message_html")
    monkeypatch.setattr(migration, "BATCH", 3)  # 8 rows: three batches, the last short
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps
    User = old.get_model("auth", "User")
    OldConversation = old.get_model("support_chat", "Conversation")
    OldMessage = old.get_model("support_chat", "Message")
    assert "html" not in {f.name for f in OldMessage._meta.get_fields()}
    user = User.objects.create(username="legacy")
    conversation = OldConversation.objects.create(customer=user)
    texts = [f"<i>{i}</i> https://example.com/{i} AT&T" for i in range(8)]
    ids = [
        OldMessage.objects.create(
            conversation=conversation,
            sender=user,
            sender_side="user",
            text=text,
            client_id=uuid.uuid4(),
            seq=n + 1,
        ).pk
        for n, text in enumerate(texts)
    ]
    render_text.cache_clear()
    calls: list[str] = []
    real = Linker.linkify
    monkeypatch.setattr(Linker, "linkify", lambda self, t: calls.append(t) or real(self, t))

    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    stored = dict(Message.objects.filter(pk__in=ids).values_list("pk", "html"))
    assert [stored[pk] for pk in ids] == [render_text(text) for text in texts]
    assert all("&lt;i&gt;" in html and "<a href=" in html for html in stored.values())
    assert len(calls) == 8  # each row rendered once

    # Reversible: back to 0005 (the column goes), then forward again.
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert Message.objects.filter(pk__in=ids, html="").count() == 0
