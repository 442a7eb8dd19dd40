"""The host's own WebSocket endpoint, a plain ASGI function (no Channels).

``/ws/echo/`` accepts any client, with or without an ``Origin`` header, and sends every
frame back. Any other path is refused (the handshake is answered with HTTP 403).
"""

from __future__ import annotations

from typing import Any

ECHO_PATH = "/ws/echo/"


async def host_websockets(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    if scope["path"] != ECHO_PATH:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
        elif event["type"] == "websocket.disconnect":
            return
