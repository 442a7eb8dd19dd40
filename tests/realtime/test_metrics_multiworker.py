"""Metrics over two uvicorn workers sharing one PROMETHEUS_MULTIPROC_DIR (prometheus-
client's multiprocess mode), one Redis and one PostgreSQL: messages sent through both,
chat/metrics scraped on one of them shows the sums over both."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from django_support_chat.models import Conversation

from ..e2e.conftest import start_server, stop_server
from .conftest import redis_url
from .test_multiworker import open_client

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def workers(tmp_path: Any) -> Any:
    assert connection.vendor == "postgresql", "the multi-worker test needs PostgreSQL"
    url = redis_url()
    import redis

    redis.Redis.from_url(url).flushdb()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()  # fresh and empty, as on every start (docs/operations.md)
    env = {"REDIS_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    servers = [start_server(env) for _ in range(2)]
    yield [base for _, base in servers]
    for process, _ in servers:
        stop_server(process)


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"{base}/chat/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[Any, float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def test_counters_are_summed_over_two_workers(workers):
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw")
    bob = User.objects.create_user("bob", password="pw")
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    conv_a = Conversation.objects.create(customer=alice)
    conv_b = Conversation.objects.create(customer=bob)
    http_a, http_b = workers
    ws_a, ws_b = (base.replace("http://", "ws://") for base in workers)

    async def scenario() -> dict[str, Any]:
        # alice on worker A, bob on worker B; the agent of each on the other worker.
        alice_ws = await open_client(ws_a, f"/ws/chat/user/{conv_a.pk}/", alice)
        bob_ws = await open_client(ws_b, f"/ws/chat/user/{conv_b.pk}/", bob)
        agent_a = await open_client(ws_b, f"/ws/chat/admin/{conv_a.pk}/", staff)
        agent_b = await open_client(ws_a, f"/ws/chat/admin/{conv_b.pk}/", staff)
        for client, n in ((alice_ws, 2), (bob_ws, 3)):
            for i in range(n):
                await client.send("message:send", {"text": f"m{i}", "client_id": str(uuid.uuid4())})
                await client.expect("message:sent")
        for agent, n in ((agent_a, 2), (agent_b, 3)):
            for _ in range(n):
                await agent.expect(
                    "message:new", where=lambda f: f["data"]["message"]["sender_side"] == "user"
                )
        # A worker counts an event published, or a frame delivered, once the await that
        # hands it on returns: the client can read the frame first. Wait for the counts.
        while_open = await asyncio.to_thread(wait_for, lambda: counted(scrape(http_a)))
        for client in (alice_ws, bob_ws, agent_a, agent_b):
            await client.close()
        return while_open

    def counted(scraped: dict[Any, float]) -> dict[Any, float]:
        published = value(scraped, "support_chat_events_published_total", type="message:new")
        delivered = value(scraped, "support_chat_deliveries_total", route="staff_conversation")
        latency = value(
            scraped, "support_chat_delivery_latency_seconds_count", route="staff_conversation"
        )
        return scraped if published >= 5 and delivered >= 5 and latency >= 5 else {}

    while_open = asyncio.run(scenario())
    # Both workers' messages, read on worker A: 2 stored on A, 3 on B.
    assert value(while_open, "support_chat_messages_stored_total", side="user") == 5
    assert value(while_open, "support_chat_events_published_total", type="message:new") == 5
    assert value(while_open, "support_chat_ws_open_sockets", route="customer") == 2
    assert value(while_open, "support_chat_ws_open_sockets", route="staff_conversation") == 2
    assert value(while_open, "support_chat_ws_connects_total", route="customer") == 2
    # The agents' message:new frames, on both workers, each with a latency observation
    # (``counted`` waited for at least five of each).
    assert not any(labels and dict(labels).get("pid") for _, labels in while_open)

    seen: dict[Any, float] = {}

    def closed() -> dict[Any, float]:
        scraped = scrape(http_b)  # now the other worker
        seen.clear()
        seen.update((k, v) for k, v in scraped.items() if "closes" in k[0] or "open" in k[0])
        done = [
            value(scraped, "support_chat_ws_closes_total", route=route, code="1000")
            for route in ("customer", "staff_conversation")
        ]
        return scraped if done == [2, 2] else {}

    # The closes reach the servers a moment after the clients' close handshake: poll.
    after = wait_for(closed, describe=lambda: seen)
    assert value(after, "support_chat_ws_open_sockets", route="customer") == 0
    assert value(after, "support_chat_ws_open_sockets", route="staff_conversation") == 0


def wait_for(probe: Any, timeout: float = 10, describe: Any = None) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s" + (f": {describe()}" if describe else ""))
