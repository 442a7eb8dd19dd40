"""The floor: a bare Channels relay with no database and no authentication.

Same routes shape, frames and fan-out as the plugin, nothing else: a socket joins its
conversation group (``ws/relay/conv/<id>/``) or the staff lobby group (``ws/relay/lobby/``);
``message:send`` is answered with ``message:sent`` and published as ``message:new`` to the
conversation group and the lobby group; ``heartbeat`` is answered. ``RELAY_LAYER`` picks
channels-redis' ``core`` (RedisChannelLayer) or ``pubsub`` (RedisPubSubChannelLayer) layer
on ``REDIS_URL``. Serve with ``uvicorn relay_asgi:application`` (benchmarks/ on PYTHONPATH).
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-relay",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": LAYERS[os.environ.get("RELAY_LAYER", "pubsub")],
                # the same pool size as the example project
                "CONFIG": {
                    "hosts": [{"address": os.environ["REDIS_URL"], "max_connections": 1000}]
                },
            }
        },
    )
    django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

LOBBY = "relay.lobby"
HEARTBEAT_INTERVAL = 10


class RelayConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.conversation_id = kwargs.get("conversation_id")
        self.groups_joined = (
            [f"relay.conv.{self.conversation_id}"] if self.conversation_id is not None else [LOBBY]
        )
        await self.accept()
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.send_json({"type": "hello", "data": {"heartbeat_interval": HEARTBEAT_INTERVAL}})

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind, ref = content.get("type"), content.get("ref")
        if kind == "heartbeat":
            await self.send_json({"type": "heartbeat", "data": {}, "ref": ref})
        elif kind == "message:send" and self.conversation_id is not None:
            data = content.get("data") or {}
            message = {
                "conversation": self.conversation_id,
                "text": data.get("text"),
                "client_id": data.get("client_id"),
                "sender_side": data.get("side", "user"),
            }
            event = {
                "type": "message:new",
                "data": {"conversation_id": self.conversation_id, "message": message},
            }
            for group in (f"relay.conv.{self.conversation_id}", LOBBY):
                await self.channel_layer.group_send(group, {"type": "relay.event", "event": event})
            await self.send_json({"type": "message:sent", "data": {"message": message}, "ref": ref})

    async def relay_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers any HTTP request with 200 (readiness probe)."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "lifespan": http_app,
        "websocket": URLRouter(
            [
                path("ws/relay/conv/<int:conversation_id>/", RelayConsumer.as_asgi()),
                path("ws/relay/lobby/", RelayConsumer.as_asgi()),
            ]
        ),
    }
)
