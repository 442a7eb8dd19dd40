"""The WebSocket read paths (``sync`` pages, ``message:new`` events) carry the HTML stored
when the message was sent: no read runs bleach."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from bleach.linkifier import Linker
from channels.db import database_sync_to_async as db

from django_support_chat.models import Conversation
from django_support_chat.text import render_text

from ..factories import send
from .conftest import make_user, open_socket


@pytest.fixture
def linkify_calls(monkeypatch) -> list[str]:
    """Every call of the real ``Linker.linkify``, from any thread (the consumer's database
    work runs in a worker thread with its own linker)."""
    calls: list[str] = []
    real = Linker.linkify

    def counting(self: Linker, text: str) -> str:
        calls.append(text)
        return real(self, text)

    monkeypatch.setattr(Linker, "linkify", counting)
    render_text.cache_clear()
    return calls


@pytest.mark.django_db(transaction=True)
async def test_ws_sync_of_distinct_messages_never_runs_bleach(
    layer, chat_settings, sockets, linkify_calls
):
    chat_settings(HISTORY_PAGE_SIZE=30)
    texts = [f"m{i} https://example.com/{i} <b>{i}</b>" for i in range(40)]

    def create() -> dict[str, Any]:
        alice = make_user("alice")
        staff = make_user("sam", is_staff=True)
        conv = Conversation.objects.create(customer=alice)
        for i, text in enumerate(texts):
            send(conv, staff if i % 2 else alice, text)
        return {"alice": alice, "staff": staff, "conv": conv}

    data = await db(create)()
    assert len(linkify_calls) == len(texts)  # once per send
    linkify_calls.clear()
    render_text.cache_clear()

    connected, code, alice = await open_socket(f"/ws/chat/user/{data['conv'].pk}/", data["alice"])
    assert connected, code
    sockets.append(alice)
    await alice.expect("hello")
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        await alice.send("sync", {"after_seq": after})
        page = (await alice.expect("sync"))["data"]
        rows += page["messages"]
        if not page["has_more"]:
            break
        after = rows[-1]["seq"]
    assert len(rows) == 40
    assert linkify_calls == []
    assert {m["text"]: m["html"] for m in rows} == {t: render_text(t) for t in texts}


@pytest.mark.django_db(transaction=True)
async def test_ws_send_renders_once_and_the_event_carries_it(
    layer, chat_settings, sockets, linkify_calls
):
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        staff = make_user("sam", is_staff=True)
        return {"alice": alice, "staff": staff, "conv": Conversation.objects.create(customer=alice)}

    data = await db(create)()
    conv = data["conv"]
    connected, code, alice = await open_socket(f"/ws/chat/user/{conv.pk}/", data["alice"])
    assert connected, code
    sockets.append(alice)
    connected, code, staff = await open_socket(f"/ws/chat/admin/{conv.pk}/", data["staff"])
    assert connected, code
    sockets.append(staff)
    await alice.expect("hello")
    await staff.expect("hello")

    text = "look https://example.com/x <script>"
    await alice.send("message:send", {"text": text, "client_id": str(uuid.uuid4())})
    sent = await alice.expect("message:sent")
    event = await staff.expect("message:new")
    # One render in all: the send's. The sender's reply and the staff's event reuse it.
    assert linkify_calls == ["look https://example.com/x &lt;script&gt;"]
    html = event["data"]["message"]["html"]
    assert html == sent["data"]["message"]["html"] == render_text(text)
    assert "&lt;script&gt;" in html and '<a href="https://example.com/x"' in html
