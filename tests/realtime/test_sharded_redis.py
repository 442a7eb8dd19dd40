"""A channel layer sharded over two Redis servers (docs/operations.md, "Scaling out").

Two redis-servers of the test's own and two uvicorn workers whose channel layer has
``hosts: [a, b]`` (tests/realtime/sharded_settings.py), once with channels-redis' pub/sub
layer and once with its list-based one. channels-redis puts each group on one server (a
CRC32 of its name); the conversations are picked so that their groups land on both.

Asserted: messages and typing go live both ways between a customer on one worker and
staff on the other, whichever server the conversation's group lives on; the groups really
are on the server the hash names (pub/sub channels, or the group's sorted set, looked up
on each redis-server); presence (the store on the layer's first host, the default) turns a
customer online and offline for staff on the other worker, and its keys are on the first
server only.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from channels_redis.utils import _consistent_hash
from django.contrib.auth import get_user_model

from django_support_chat.events import conversation_group
from django_support_chat.models import Conversation, Message

from ..e2e.conftest import ROOT, start_server, stop_server
from .test_multiworker import open_client
from .test_redis_outage import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PREFIX = "asgi"  # channels-redis' default prefix (sharded_settings.py keeps it)
PRESENCE_PREFIX = "support_chat:presence"  # PRESENCE_KEY_PREFIX's default


@pytest.fixture
def shards() -> Iterator[list[RedisServer]]:
    servers = [RedisServer(), RedisServer()]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def shard_of(backend: str, group: str) -> int:
    """The index of the server channels-redis puts ``group`` on (as the layers compute it)."""
    name = f"{PREFIX}__group__{group}" if backend == "pubsub" else group
    return _consistent_hash(name, 2)


def group_is_on(backend: str, client: redis.Redis, group: str) -> bool:
    if backend == "pubsub":
        return bool(client.pubsub_channels(f"{PREFIX}__group__{group}"))
    return bool(client.exists(f"{PREFIX}:group:{group}"))


@pytest.mark.parametrize("backend", ["pubsub", "core"])
def test_two_shards(backend: str, shards: list[RedisServer]) -> None:
    User = get_user_model()
    staff = User.objects.create_user("sam", password="pw", is_staff=True)
    # Conversations until each server holds at least one conversation group.
    picked: dict[int, Conversation] = {}
    for i in range(64):
        conversation = Conversation.objects.create(
            customer=User.objects.create_user(f"c{i}", password="pw")
        )
        picked.setdefault(shard_of(backend, conversation_group(conversation.pk)), conversation)
        if len(picked) == 2:
            break
    assert sorted(picked) == [0, 1]
    conversations = [picked[0], picked[1]]

    env = {
        "DJANGO_SETTINGS_MODULE": "tests.realtime.sharded_settings",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "example_project"), str(ROOT / "src")]
        ),
        "SHARD_URLS": ",".join(s.url for s in shards),
        "SHARD_BACKEND": backend,
    }
    workers = [start_server(env) for _ in range(2)]
    bases = [base.replace("http://", "ws://") for _, base in workers]
    clients = [redis.Redis(port=s.port) for s in shards]

    async def scenario() -> None:
        # Staff on worker B: the lobby, then each conversation; customers on worker A.
        lobby = await open_client(bases[1], "/ws/chat/admin/", staff)
        for conversation in conversations:
            customer_user = conversation.customer
            customer = await open_client(
                bases[0], f"/ws/chat/user/{conversation.pk}/", customer_user
            )
            online = await lobby.expect(
                "presence:update", where=lambda f, u=customer_user: f["data"]["user_id"] == u.pk
            )
            assert online["data"]["online"] is True
            agent = await open_client(bases[1], f"/ws/chat/admin/{conversation.pk}/", staff)
            assert agent.hello["data"]["presence"]["online"] is True  # read on worker B

            group = conversation_group(conversation.pk)
            shard = shard_of(backend, group)
            assert group_is_on(backend, clients[shard], group)
            assert not group_is_on(backend, clients[1 - shard], group)

            await customer.send("message:send", {"text": "from A", "client_id": str(uuid.uuid4())})
            sent = await customer.expect("message:sent")
            live = await agent.expect("message:new")
            assert live["data"]["message"]["id"] == sent["data"]["message"]["id"]
            await lobby.expect(
                "message:new",
                where=lambda f, m=sent: f["data"]["message"]["id"] == m["data"]["message"]["id"],
            )
            await agent.send("typing:start")
            assert (await customer.expect("typing:start"))["data"]["side"] == "staff"
            await agent.send("message:send", {"text": "from B", "client_id": str(uuid.uuid4())})
            reply = await customer.expect(
                "message:new", where=lambda f: f["data"]["message"]["sender_side"] == "staff"
            )
            assert reply["data"]["message"]["text"] == "from B"

            # Presence lives on the first server only, whichever shard the group is on.
            assert clients[0].keys(f"{PRESENCE_PREFIX}:user:{customer_user.pk}")
            assert not clients[1].keys(f"{PRESENCE_PREFIX}:*")

            await customer.close()
            offline = await lobby.expect(
                "presence:update",
                where=lambda f, u=customer_user: (
                    f["data"]["user_id"] == u.pk and f["data"]["online"] is False
                ),
            )
            assert offline["data"]["side"] == "user"
            await agent.close()
        await lobby.close()

    try:
        asyncio.run(scenario())
    finally:
        for process, _ in workers:
            stop_server(process)
        for client in clients:
            client.close()
    for conversation in conversations:
        texts = list(
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .values_list("text", flat=True)
        )
        assert texts == ["from A", "from B"]
