"""The chat's REST API, inbox search and Django admin on the foreign host: an email-login
user model with an optional ``name`` and no username, first or last name."""

from __future__ import annotations

import pytest

from .conftest import api_client, page_client
from .helpers import API, INBOX, TEAM_NAME, history, inbox_ids, ok, post_message, start_conversation

pytestmark = pytest.mark.django_db


def test_customer_writes_staff_reads_and_replies_customer_reads_history(
    customer, customer_api, staff_api
):
    conversation = start_conversation(customer_api)
    assert conversation["customer"]["id"] == customer.pk
    assert conversation["customer"]["name"] == "Alice Archer"
    # The second call finds the same conversation.
    assert start_conversation(customer_api)["id"] == conversation["id"]

    sent = post_message(customer_api, conversation["id"], "Hello, my invoice is wrong")
    assert sent["sender_side"] == "user"
    assert sent["sender"]["name"] == "Alice Archer"

    rows = ok(staff_api.get(f"{API}inbox/")).json()["results"]
    [row] = [r for r in rows if r["id"] == conversation["id"]]
    assert row["last_message"]["text"] == "Hello, my invoice is wrong"
    assert row["unread_count"] == 1
    assert row["customer"]["name"] == "Alice Archer"

    staff_history = history(staff_api, conversation["id"])
    assert [m["text"] for m in staff_history] == ["Hello, my invoice is wrong"]
    reply = post_message(staff_api, conversation["id"], "Fixed, sorry about that.")
    assert reply["sender_side"] == "staff"

    messages = history(customer_api, conversation["id"])
    assert [(m["sender_side"], m["text"]) for m in messages] == [
        ("user", "Hello, my invoice is wrong"),
        ("staff", "Fixed, sorry about that."),
    ]
    assert messages[1]["sender"]["name"] == TEAM_NAME
    unread = ok(customer_api.get(f"{API}unread_count")).json()
    assert unread["unread_count"] == 1


def test_other_customers_do_not_see_the_conversation(customer_api, other_customer):
    conversation = start_conversation(customer_api)
    post_message(customer_api, conversation["id"], "Private")
    other = api_client(other_customer)
    assert start_conversation(other)["id"] != conversation["id"]
    ok(other.get(f"{API}conversations/{conversation['id']}/messages/"), 404)
    ok(other.get(f"{API}inbox/"), 403)


# Inbox search ------------------------------------------------------------------------------


@pytest.fixture
def searchable(customer, nameless_customer, staff):
    """Alice (named) wrote about an invoice; Bob (no name) about a parcel."""
    alice = api_client(customer)
    bob = api_client(nameless_customer)
    a = start_conversation(alice)["id"]
    post_message(alice, a, "My invoice 4711 is wrong")
    b = start_conversation(bob)["id"]
    post_message(bob, b, "Where is my parcel?")
    return {"alice": a, "bob": b}


SEARCHES = [
    pytest.param("alice@customers.example", {"alice"}, id="email"),
    pytest.param("bob.baker@customers.example", {"bob"}, id="email-of-a-nameless-customer"),
    pytest.param("baker", {"bob"}, id="part-of-the-email"),
    pytest.param("bob.baker", {"bob"}, id="email-local-part"),
    pytest.param("customers.example", {"alice", "bob"}, id="email-domain"),
    pytest.param("Archer", {"alice"}, id="name"),
    pytest.param("alice archer", {"alice"}, id="full-name"),
    pytest.param("invoice", {"alice"}, id="message-text"),
    pytest.param("parcel", {"bob"}, id="message-text-of-a-nameless-customer"),
    pytest.param("nothing-like-this", set(), id="no-match"),
]


@pytest.mark.parametrize(("query", "expected"), SEARCHES)
def test_rest_inbox_search(searchable, staff_api, query, expected):
    assert inbox_ids(staff_api, search=query) == {searchable[name] for name in expected}


@pytest.mark.parametrize(("query", "expected"), SEARCHES)
def test_inbox_page_search(searchable, staff, query, expected):
    content = ok(page_client(staff).get(INBOX, {"q": query})).content.decode()
    for name, pk in searchable.items():
        shown = f'id="sc-row-{pk}"' in content
        assert shown == (name in expected), f"{name}'s row shown={shown} for q={query!r}"


def test_inbox_search_ignores_the_staff_members_own_email(searchable, staff_api):
    """Search covers customers and messages, not whoever works the inbox."""
    assert inbox_ids(staff_api, search="agent.smith") == set()


# Django admin at /backoffice/ ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("conversation", "alice@customers.example"),
        ("conversation", "baker"),
        ("conversation", "Archer"),
        ("message", "invoice"),
        ("auditentry", "agent.smith"),
        ("auditentry", "Archer"),
    ],
)
def test_admin_changelist_search(searchable, staff_api, admin, model, query):
    # Staff replies and assigns: audit rows and notifications exist.
    post_message(staff_api, searchable["alice"], "On it")
    client = page_client(admin)
    response = client.get(f"/backoffice/support_chat/{model}/", {"q": query})
    ok(response)


def test_admin_conversation_search_by_email_finds_the_conversation(searchable, admin):
    content = ok(
        page_client(admin).get(
            "/backoffice/support_chat/conversation/", {"q": "alice@customers.example"}
        )
    ).content.decode()
    assert f"/backoffice/support_chat/conversation/{searchable['alice']}/change/" in content
    assert f"/backoffice/support_chat/conversation/{searchable['bob']}/change/" not in content


def test_admin_change_pages_open(searchable, admin):
    client = page_client(admin)
    ok(client.get(f"/backoffice/support_chat/conversation/{searchable['bob']}/change/"))
    ok(client.get("/backoffice/accounts/member/", {"q": "baker"}))
