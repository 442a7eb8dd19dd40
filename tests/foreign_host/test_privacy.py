"""Staff privacy on a host whose logins are email addresses.

The staff member ``agent.smith@staff.example`` has no name. Nothing a customer can receive,
from any endpoint a customer may call or on the customer's socket, may contain that address
or its local part; customers see the team name ("Support") instead. Once the staff member
sets a name, customers see it. Customers, in turn, are never shown as "None" in the inbox.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async

from . import sockets
from .conftest import api_client, page_client
from .helpers import (
    API,
    INBOX,
    TEAM_NAME,
    history,
    leaks,
    ok,
    post_message,
    start_conversation,
)

NO_NAME = re.compile(r"\bNone\b")
# Where the inbox names the customer: the row's labels, the pane's header and composer.
EMPTY_NAME = re.compile(
    r'(?:conversation with|Reply to)\s*"|data-customer-name=""|class="sc-row-name[^"]*">\s*<'
    r'|id="sc-participant-name"[^>]*>\s*<'
)


def customer_view(client: Any, page: Any, conversation_id: int) -> dict[str, str]:
    """Every response a customer can get, by what was asked (bodies as text)."""
    c = f"{API}conversations/{conversation_id}/"
    bodies = {
        "GET conversations/": client.get(f"{API}conversations/"),
        "GET conversations/<id>/": client.get(c),
        "GET messages/": client.get(f"{c}messages/"),
        "GET messages/?after=0": client.get(f"{c}messages/", {"after": 0}),
        "POST messages/": client.post(
            f"{c}messages/",
            {"text": "Still there?", "client_id": "5f0a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"},
            format="json",
        ),
        "POST read": client.post(f"{c}read", {}, format="json"),
        "GET unread_count": client.get(f"{API}unread_count"),
        "POST ws-token": client.post(f"{API}ws-token", {}, format="json"),
        "GET schema/": client.get(f"{API}schema/"),
        # Staff-only endpoints answer the customer too (with a refusal).
        "GET inbox/": client.get(f"{API}inbox/"),
        "POST assign": client.post(f"{c}assign", {"assignee": None}, format="json"),
        "POST close": client.post(f"{c}close", {}, format="json"),
        "GET inbox page": page.get(INBOX),
        # The host's pages carry the widget's config.
        "GET /": page.get("/"),
        "GET /account/": page.get("/account/"),
    }
    for name, response in bodies.items():
        assert response.status_code < 500, f"{name}: {response.status_code}"
    return {name: response.content.decode() for name, response in bodies.items()}


def staff_steps(staff_api: Any, staff: Any, conversation_id: int) -> list[tuple[str, Any]]:
    """Reply, assign to self, read, close, reopen: each a (name, callable)."""
    c = f"{API}conversations/{conversation_id}/"
    return [
        ("reply", lambda: post_message(staff_api, conversation_id, "Hello, how can I help?")),
        ("assign", lambda: ok(staff_api.post(f"{c}assign", {"assignee": staff.pk}, format="json"))),
        ("read", lambda: ok(staff_api.post(f"{c}read", {}, format="json"))),
        ("close", lambda: ok(staff_api.post(f"{c}close", {}, format="json"))),
        ("reopen", lambda: ok(staff_api.post(f"{c}reopen", {}, format="json"))),
    ]


@pytest.mark.django_db
def test_no_customer_response_carries_the_staff_email(customer, staff, staff_api):
    client, page = api_client(customer), page_client(customer)
    conversation_id = start_conversation(client)["id"]
    post_message(client, conversation_id, "Hi, I need help")
    found = {}
    for step, run in staff_steps(staff_api, staff, conversation_id):
        run()
        for name, body in customer_view(client, page, conversation_id).items():
            if leaks(body):
                found[f"after {step}: {name}"] = leaks(body)
    assert found == {}

    [reply] = [m for m in history(client, conversation_id) if m["sender_side"] == "staff"]
    assert reply["sender"]["name"] == TEAM_NAME
    detail = ok(client.get(f"{API}conversations/{conversation_id}/")).json()
    assert detail["assigned_to"] is None or detail["assigned_to"]["name"] == TEAM_NAME


@pytest.mark.django_db
def test_a_named_staff_member_is_shown_by_name(customer, staff, staff_api):
    staff.name = "Agent Smith"
    staff.save()
    client = api_client(customer)
    conversation_id = start_conversation(client)["id"]
    post_message(client, conversation_id, "Hi")
    post_message(staff_api, conversation_id, "Hi, Agent Smith here.")
    ok(
        staff_api.post(
            f"{API}conversations/{conversation_id}/assign", {"assignee": staff.pk}, format="json"
        )
    )
    [reply] = [m for m in history(client, conversation_id) if m["sender_side"] == "staff"]
    assert reply["sender"]["name"] == "Agent Smith"
    detail = ok(client.get(f"{API}conversations/{conversation_id}/")).json()
    assert detail["assigned_to"] is None or detail["assigned_to"]["name"] == "Agent Smith"
    for name, body in customer_view(client, page_client(customer), conversation_id).items():
        assert leaks(body) == [], name


@pytest.mark.django_db
def test_customers_in_the_inbox_have_real_names_never_none(
    customer, nameless_customer, staff, staff_api
):
    named = start_conversation(api_client(customer))["id"]
    post_message(api_client(customer), named, "Question about my plan")
    nameless = start_conversation(api_client(nameless_customer))["id"]
    post_message(api_client(nameless_customer), nameless, "Question about my parcel")
    post_message(staff_api, nameless, "Let me check")

    rows = {row["id"]: row for row in ok(staff_api.get(f"{API}inbox/")).json()["results"]}
    assert rows[named]["customer"]["name"] == "Alice Archer"
    assert rows[nameless]["customer"]["name"] == "bob.baker@customers.example"
    messages = history(staff_api, nameless)
    assert messages[0]["sender"]["name"] == "bob.baker@customers.example"

    staff_page = page_client(staff)
    for url in (INBOX, f"{INBOX}{nameless}/", f"{INBOX}{named}/"):
        content = ok(staff_page.get(url)).content.decode()
        assert "bob.baker@customers.example" in content, url
        assert "Alice Archer" in content, url
        assert not NO_NAME.search(content), (url, NO_NAME.findall(content))
        assert not EMPTY_NAME.search(content), (url, EMPTY_NAME.findall(content))
    pane = ok(staff_page.get(f"{INBOX}{nameless}/")).content.decode()
    participant = re.search(r'id="sc-participant-name"[^>]*>([^<]*)<', pane)
    assert participant is not None and participant[1].strip() == "bob.baker@customers.example"


# The customer's socket ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_customer_socket_never_carries_the_staff_email(customer, staff):
    call = database_sync_to_async
    client, staff_api = await call(api_client)(customer), await call(api_client)(staff)
    conversation_id = (await call(start_conversation)(client))["id"]
    await call(post_message)(client, conversation_id, "Hi, I need help")

    mine = await sockets.connect(f"/ws/chat/user/{conversation_id}/", customer)
    theirs = await sockets.connect(f"/ws/chat/admin/{conversation_id}/", staff)
    lobby = await sockets.connect("/ws/chat/admin/", staff)
    assert mine.connected and theirs.connected and lobby.connected
    try:
        await theirs.send("message:read", {})
        await mine.expect("message:read", lambda f: f["data"]["side"] == "staff")
        await theirs.send("typing:start")
        await mine.expect("typing:start", lambda f: f["data"]["side"] == "staff")
        await theirs.send("typing:stop")
        await mine.expect("typing:stop")
        await theirs.send(
            "message:send",
            {"text": "Hello, how can I help?", "client_id": "0b7a4c8e-2f51-4d6b-9c3e-1a2b3c4d5e6f"},
            ref="r1",
        )
        new = await mine.expect(
            "message:new", lambda f: f["data"]["message"]["sender_side"] == "staff"
        )
        assert new["data"]["message"]["sender"]["name"] == TEAM_NAME
        for _step, run in staff_steps(staff_api, staff, conversation_id)[1:]:
            await call(run)()  # assign, read, close, reopen
        await mine.read()
        updates = [f["data"] for f in mine.frames if f["type"] == "conversation:updated"]
        assert len(updates) >= 3, [f["type"] for f in mine.frames]  # assign, close, reopen
        # A socket opened now: its hello carries the assigned conversation; sync too.
        again = await sockets.connect(f"/ws/chat/user/{conversation_id}/", customer)
        assert again.connected
        await again.send("sync", {"after_id": 0}, ref="s1")
        await again.expect("sync")
        await again.read()
        await again.close()
        frames = mine.frames + again.frames
        found = [frame for frame in frames if leaks(json.dumps(frame))]
        assert found == []
        # The staff member's own sockets do see who they are (no blanket stripping).
        hello = next(f for f in theirs.frames if f["type"] == "hello")
        assert hello["data"]["user_id"] == staff.pk
    finally:
        for socket in (mine, theirs, lobby):
            await socket.close()
