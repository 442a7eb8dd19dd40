"""The foreign host's ``application`` (README step 4: ``websocket_application(fallback=...)``)
in-process: the chat's routes work with their Origin check and session auth, and the host's
own WebSocket endpoint is served exactly as before the chat was added."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from . import sockets
from .conftest import api_client
from .helpers import TEAM_NAME, start_conversation

pytestmark = pytest.mark.django_db(transaction=True)


async def conversation_of(customer) -> int:
    client = await database_sync_to_async(api_client)(customer)
    return (await database_sync_to_async(start_conversation)(client))["id"]


async def test_customer_and_staff_talk_over_the_chat_routes(customer, staff):
    conversation_id = await conversation_of(customer)
    mine = await sockets.connect(f"/ws/chat/user/{conversation_id}/", customer)
    theirs = await sockets.connect(f"/ws/chat/admin/{conversation_id}/", staff)
    lobby = await sockets.connect("/ws/chat/admin/", staff)
    try:
        assert mine.connected and theirs.connected and lobby.connected
        hello = mine.frames[0]
        assert hello["type"] == "hello"
        assert hello["data"]["side"] == "user"
        assert hello["data"]["conversation"]["customer"]["name"] == "Alice Archer"
        assert theirs.frames[0]["data"]["side"] == "staff"

        await mine.send(
            "message:send",
            {"text": "Hello from a socket", "client_id": "3d1c0b9a-8e7f-4a6b-9c5d-4e3f2a1b0c9d"},
            ref="m1",
        )
        sent = await mine.expect("message:sent")
        assert sent["ref"] == "m1"
        assert sent["data"]["message"]["sender"]["name"] == "Alice Archer"
        arrived = await theirs.expect("message:new")
        assert arrived["data"]["message"]["text"] == "Hello from a socket"
        await lobby.expect("message:new")

        await theirs.send(
            "message:send",
            {"text": "Hello back", "client_id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"},
        )
        reply = await mine.expect(
            "message:new", lambda f: f["data"]["message"]["sender_side"] == "staff"
        )
        assert reply["data"]["message"]["sender"]["name"] == TEAM_NAME
    finally:
        for socket in (mine, theirs, lobby):
            await socket.close()


async def test_a_customer_cannot_open_the_staff_routes(customer):
    conversation_id = await conversation_of(customer)
    for path in ("/ws/chat/admin/", f"/ws/chat/admin/{conversation_id}/"):
        socket = await sockets.connect(path, customer)
        assert not socket.connected
        assert socket.close_code == 4403, path


async def test_anonymous_sockets_are_refused_with_4401(customer):
    conversation_id = await conversation_of(customer)
    socket = await sockets.connect(f"/ws/chat/user/{conversation_id}/")
    assert not socket.connected
    assert socket.close_code == 4401


@pytest.mark.parametrize("origin", [None, b"https://evil.example"], ids=["no-origin", "foreign"])
async def test_chat_routes_refuse_a_missing_or_foreign_origin(customer, staff, origin):
    conversation_id = await conversation_of(customer)
    for path, user in (
        (f"/ws/chat/user/{conversation_id}/", customer),
        ("/ws/chat/admin/", staff),
        (f"/ws/chat/admin/{conversation_id}/", staff),
    ):
        socket = await sockets.connect(path, user, origin=origin)
        assert not socket.connected, path
        assert socket.frames == [], path  # refused before the consumer: no hello


@pytest.mark.parametrize("origin", [None, b"https://elsewhere.example"], ids=["no-origin", "any"])
async def test_the_hosts_echo_socket_is_untouched(origin):
    headers = [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator(sockets.application(), "/ws/echo/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_from(timeout=5) == "ping"
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert await communicator.receive_from(timeout=5) == b"\x00\x01"
    await communicator.disconnect()


async def test_the_echo_socket_needs_no_session(customer):
    """The host's endpoint gets no authentication added: a signed-in user's cookie is
    simply passed through, and anonymous clients are served alike."""
    socket = await sockets.connect("/ws/echo/", customer, origin=None)
    assert socket.connected
    await socket.comm.send_to(text_data='{"type": "not-a-chat-frame"}')
    assert await socket.comm.receive_from(timeout=5) == '{"type": "not-a-chat-frame"}'
    await socket.close()


@pytest.mark.parametrize(
    "path", ["/ws/nothing/", "/ws/chat/nope/", "/ws/chat/user/abc/", "/ws/chat/", "/"]
)
async def test_unknown_paths_are_refused_cleanly(path):
    """Refused at the handshake, by the chat (its prefix) or by the host (elsewhere); no
    exception escapes the application."""
    communicator = WebsocketCommunicator(
        sockets.application(), path, headers=[(b"origin", sockets.ORIGIN)]
    )
    connected, _code = await communicator.connect(timeout=5)
    assert not connected
    # As a server does after a refusal; then the application must end without raising.
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(timeout=2)
    assert communicator.future.done() and communicator.future.exception() is None


@pytest.mark.parametrize(
    ("frame", "data"),
    [
        ("sync", {"after_id": 0}),
        ("message:send", {"text": "Anyone?", "client_id": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"}),
        ("message:read", {}),
    ],
    ids=["sync", "message:send", "message:read"],
)
async def test_a_conversation_deleted_in_the_back_office_does_not_crash_open_sockets(
    customer, staff, frame, data
):
    """Django admin (``/backoffice/``) lets staff delete a conversation while sockets are
    open on it. Their next frame gets an ``error`` answer or a 4404 close, never an
    exception out of the consumer (a traceback in the server log, close code 1011)."""
    from django_support_chat.models import Conversation

    conversation_id = await conversation_of(customer)
    theirs = await sockets.connect(f"/ws/chat/admin/{conversation_id}/", staff)
    mine = await sockets.connect(f"/ws/chat/user/{conversation_id}/", customer)
    assert theirs.connected and mine.connected
    await database_sync_to_async(Conversation.objects.filter(pk=conversation_id).delete)()
    try:
        for socket in (theirs, mine):
            await socket.send(frame, data, ref="after-delete")
            frames = await socket.read(quiet=0.5)
            errors = [f for f in frames if f["type"] == "error"]
            assert socket.close_code == 4404 or errors, (frame, frames, socket.close_code)
    finally:
        for socket in (theirs, mine):
            if socket.close_code is None:
                await socket.close()
