"""The WebSocket counters: open sockets, connects, closes and refusals by code, throttled
frames, deliveries and their latency, messages stored; through the example project's ASGI
stack, on the in-memory layer and on Redis. Read from prometheus-client's default
registry, the one chat/metrics serves in a single process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from prometheus_client import REGISTRY

from django_support_chat.models import Conversation

from .conftest import make_user, open_socket
from .test_limits import connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        staff = make_user("staff", is_staff=True)
        return {"alice": alice, "staff": staff, "conv": Conversation.objects.create(customer=alice)}

    return await database_sync_to_async(create)()


async def test_connect_and_close_move_open_sockets_and_closes_by_code(people, sockets):
    path = f"/ws/chat/user/{people['conv'].pk}/"
    open_before = sample("support_chat_ws_open_sockets", route="customer")
    connects_before = sample("support_chat_ws_connects_total", route="customer")
    closes_before = sample("support_chat_ws_closes_total", route="customer", code="1000")
    socket = await connect(sockets, path, people["alice"])
    assert sample("support_chat_ws_open_sockets", route="customer") == open_before + 1
    assert sample("support_chat_ws_connects_total", route="customer") == connects_before + 1
    await socket.comm.disconnect(code=1000)
    sockets.remove(socket)
    assert sample("support_chat_ws_open_sockets", route="customer") == open_before
    assert sample("support_chat_ws_closes_total", route="customer", code="1000") == (
        closes_before + 1
    )


async def test_unknown_close_codes_share_one_label(people, sockets):
    before = sample("support_chat_ws_closes_total", route="customer", code="other")
    socket = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    await socket.comm.disconnect(code=4999)  # a client's own code
    sockets.remove(socket)
    assert sample("support_chat_ws_closes_total", route="customer", code="other") == before + 1
    assert (
        REGISTRY.get_sample_value(
            "support_chat_ws_closes_total", {"route": "customer", "code": "4999"}
        )
        is None
    )


async def test_refusal_is_counted_by_code_and_not_as_open(people):
    bob = await database_sync_to_async(make_user)("bob")
    open_before = sample("support_chat_ws_open_sockets", route="customer")
    before = sample("support_chat_ws_refused_total", route="customer", code="4404")
    connected, code, _ = await open_socket(f"/ws/chat/user/{people['conv'].pk}/", bob)
    assert (connected, code) == (False, 4404)  # not theirs: not found
    assert sample("support_chat_ws_refused_total", route="customer", code="4404") == before + 1
    assert sample("support_chat_ws_open_sockets", route="customer") == open_before


async def test_message_counts_side_publish_delivery_and_latency(people, sockets):
    conv = people["conv"]
    customer = await connect(sockets, f"/ws/chat/user/{conv.pk}/", people["alice"])
    agent = await connect(sockets, f"/ws/chat/admin/{conv.pk}/", people["staff"])
    stored = sample("support_chat_messages_stored_total", side="user")
    published = sample("support_chat_events_published_total", type="message:new")
    delivered = sample("support_chat_deliveries_total", route="staff_conversation")
    latency = "support_chat_delivery_latency_seconds"
    observed = sample(f"{latency}_count", route="staff_conversation")
    total = sample(f"{latency}_sum", route="staff_conversation")

    await customer.send("message:send", {"text": "hi", "client_id": str(uuid.uuid4())}, ref="m")
    await customer.expect("message:sent")
    await agent.expect("message:new")

    assert sample("support_chat_messages_stored_total", side="user") == stored + 1
    assert sample("support_chat_events_published_total", type="message:new") == published + 1
    # The agent's socket got message:new (and maybe presence or unread events: >= 1).
    assert sample("support_chat_deliveries_total", route="staff_conversation") >= delivered + 1
    assert sample(f"{latency}_count", route="staff_conversation") >= observed + 1
    spent = sample(f"{latency}_sum", route="staff_conversation") - total
    assert 0 <= spent < 5  # seconds: publish -> sent, in this process


async def test_throttled_frame_is_counted(people, sockets, chat_settings):
    chat_settings(THROTTLE_RATES={"support_chat_send": "1/minute"})
    customer = await connect(sockets, f"/ws/chat/user/{people['conv'].pk}/", people["alice"])
    labels = {"interface": "ws", "scope": "support_chat_send"}
    before = sample("support_chat_throttled_total", **labels)
    for ref in ("a", "b", "c"):
        await customer.send("message:send", {"text": ref, "client_id": str(uuid.uuid4())}, ref=ref)
    await customer.expect("message:sent")
    for _ in range(2):
        error = await customer.expect("error")
        assert error["data"]["code"] == "throttled"
    # Every throttled frame, though the log line comes once per window.
    assert sample("support_chat_throttled_total", **labels) == before + 2
