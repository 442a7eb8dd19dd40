"""Shortcuts over the chat's REST API at the foreign host's mount point (``/api/chat/``)."""

from __future__ import annotations

import re
import uuid
from typing import Any

API = "/api/chat/"
INBOX = "/backoffice/support/"
STAFF_EMAIL = "agent.smith@staff.example"
# What a customer must never receive about the nameless staff member.
STAFF_SECRETS = ("agent.smith", "staff.example")
TEAM_NAME = "Support"  # WIDGET_TEXTS["title"], the default team name


def ok(response: Any, status: int = 200) -> Any:
    body = getattr(response, "content", b"")[:2000]
    assert response.status_code == status, f"{response.status_code} {response.request}: {body}"
    return response


def start_conversation(client: Any) -> dict[str, Any]:
    """``GET conversations/``: the customer's conversation, created on demand."""
    results = ok(client.get(f"{API}conversations/")).json()["results"]
    assert len(results) == 1, results
    return results[0]


def post_message(client: Any, conversation_id: int, text: str, status: int = 201) -> dict[str, Any]:
    payload = {"text": text, "client_id": str(uuid.uuid4())}
    response = client.post(
        f"{API}conversations/{conversation_id}/messages/", payload, format="json"
    )
    return ok(response, status).json()


def history(client: Any, conversation_id: int) -> list[dict[str, Any]]:
    """Every message, oldest first."""
    response = ok(client.get(f"{API}conversations/{conversation_id}/messages/"))
    return list(reversed(response.json()["results"]))


def inbox_ids(client: Any, **params: Any) -> set[int]:
    response = ok(client.get(f"{API}inbox/", params))
    return {row["id"] for row in response.json()["results"]}


def leaks(text: str) -> list[str]:
    """The staff secrets found in ``text`` (case-insensitive)."""
    lowered = text.lower()
    return [secret for secret in STAFF_SECRETS if secret in lowered]


# Python representations that must never reach a page: dataclass / namedtuple reprs
# ("MessageView(id=3, ...)") and model reprs, raw or escaped ("<Message: ...>").
PYTHON_REPR = re.compile(
    r"\b[A-Z][A-Za-z]+\((?:[a-z_]+=)|(?:<|&lt;)(?:Message|Conversation|Member)[: ]"
    r"|\b(?:Message|Conversation) object \("
)
