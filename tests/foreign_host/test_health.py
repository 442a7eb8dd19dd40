"""The chat's health checks on the foreign host, mounted part by part at ``status/chat/``
(docs/operations.md): liveness and readiness answer there, with the host's own database
and channel layer."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse


def test_live_answers_at_the_hosts_prefix():
    assert reverse("support_chat_ops:live") == "/status/chat/live"
    response = Client().get("/status/chat/live")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db(transaction=True)
def test_ready_answers_at_the_hosts_prefix():
    response = Client().get("/status/chat/ready")
    body = json.loads(response.content)
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: result["ok"] for name, result in body["checks"].items()} == {
        "database": True,
        "channel_layer": True,
        "presence": True,
    }
    # Not at the one-include path: this host mounts the parts itself.
    assert Client().get("/chat/health/ready").status_code == 404
