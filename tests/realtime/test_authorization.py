"""Authorization that lasts: tokens die with their session, and every open socket's user
is re-checked once per heartbeat interval by the worker's watchdog (one query for all
users, one for their sessions), closing with 4401 or 4403 (docs/protocol.md)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_support_chat import tokens
from django_support_chat.models import Conversation
from django_support_chat.realtime import consumers

from .conftest import Socket, make_user, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

db = database_sync_to_async
ALL_USERS_BACKEND = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]


@pytest.fixture
async def people(layer: str) -> dict[str, Any]:
    def create() -> dict[str, Any]:
        alice = make_user("alice")
        return {
            "alice": alice,
            "staff": make_user("staff", is_staff=True),
            "conv": Conversation.objects.create(customer=alice),
        }

    return await db(create)()


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def open_with_client(path: str, client: Client, sockets: list) -> Socket:
    """A socket on ``client``'s own session (so ending that session ends the socket)."""
    from example.asgi import application

    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    communicator = WebsocketCommunicator(
        application,
        path,
        headers=[
            (b"origin", b"http://localhost"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    socket = Socket(communicator)
    sockets.append(socket)
    await socket.expect("hello")
    return socket


async def open_with_token(path: str, token: str, sockets: list) -> tuple[bool, Any, Socket]:
    connected, code, socket = await open_socket(path, None, query=f"token={token}")
    if connected:
        sockets.append(socket)
        await socket.expect("hello")
    return connected, code, socket


async def closed_with(socket: Socket, timeout: float = 3) -> int:
    output = await socket.comm.receive_output(timeout=timeout)
    while output["type"] != "websocket.close":
        output = await socket.comm.receive_output(timeout=timeout)
    return output["code"]


async def still_open(socket: Socket, timeout: float = 0.3) -> bool:
    """No close within ``timeout`` (other frames, such as presence updates, may come)."""
    while not await socket.comm.receive_nothing(timeout=timeout):
        if (await socket.comm.receive_output())["type"] == "websocket.close":
            return False
    return True


async def sweep() -> None:
    """One watchdog round, as every HEARTBEAT_INTERVAL (same event loop as the sockets)."""
    await consumers.Watchdog.for_running_loop().sweep()


def fetch_token(client: Client) -> str:
    response = client.post("/api/chat/ws-token")
    assert response.status_code == 200
    return response.json()["token"]


# -- tokens -------------------------------------------------------------------------------


async def test_a_token_is_refused_once_its_session_logged_out(people, sockets):
    client = await db(signed_in)(people["alice"])
    token = await db(fetch_token)(client)
    path = f"/ws/chat/user/{people['conv'].pk}/"
    await db(client.post)("/logout/")
    connected, code, _ = await open_with_token(path, token, sockets)
    assert (connected, code) == (False, consumers.CLOSE_UNAUTHENTICATED)


async def test_a_token_is_refused_once_its_session_is_deleted(people, sockets):
    client = await db(signed_in)(people["alice"])
    token = await db(fetch_token)(client)
    assert await db(tokens.read_token)(token) is not None
    await db(lambda: Session.objects.all().delete())()  # expiry, admin, clearsessions ...
    assert await db(tokens.read_token)(token) is None
    connected, code, _ = await open_with_token(
        f"/ws/chat/user/{people['conv'].pk}/", token, sockets
    )
    assert (connected, code) == (False, consumers.CLOSE_UNAUTHENTICATED)


async def test_a_token_of_a_live_session_works_and_its_socket_ends_with_the_session(
    people, sockets
):
    client = await db(signed_in)(people["alice"])
    token = await db(fetch_token)(client)
    connected, code, socket = await open_with_token(
        f"/ws/chat/user/{people['conv'].pk}/", token, sockets
    )
    assert connected, code
    await sweep()
    assert await still_open(socket)  # still authorized: stays open
    await db(lambda: Session.objects.all().delete())()
    await sweep()
    assert await closed_with(socket) == consumers.CLOSE_UNAUTHENTICATED


async def test_a_token_without_a_session_lives_while_its_user_is_active(people, sockets):
    """DRF token authentication issues tokens without a session: only the user counts."""
    token = await db(tokens.make_token)(people["alice"])
    connected, code, socket = await open_with_token(
        f"/ws/chat/user/{people['conv'].pk}/", token, sockets
    )
    assert connected, code
    await sweep()
    assert await still_open(socket)

    def deactivate() -> None:
        people["alice"].is_active = False
        people["alice"].save()

    await db(deactivate)()
    await sweep()
    assert await closed_with(socket) == consumers.CLOSE_UNAUTHENTICATED


# -- cookie sockets -----------------------------------------------------------------------


async def test_a_cookie_socket_ends_with_its_session(people, sockets):
    """Not only logout(): a session deleted or expired by any means ends its sockets."""
    client = await db(signed_in)(people["alice"])
    other = await db(signed_in)(people["alice"])  # the same user in another browser
    mine = await open_with_client(f"/ws/chat/user/{people['conv'].pk}/", client, sockets)
    theirs = await open_with_client(f"/ws/chat/user/{people['conv'].pk}/", other, sockets)
    key = client.session.session_key
    await db(lambda: Session.objects.filter(session_key=key).delete())()
    await sweep()
    assert await closed_with(mine) == consumers.CLOSE_UNAUTHENTICATED
    assert await still_open(theirs)


async def test_demoted_staff_lobby_closes_with_4403_within_one_sweep(people, sockets):
    client = await db(signed_in)(people["staff"])
    lobby = await open_with_client("/ws/chat/admin/", client, sockets)
    inside = await open_with_client(f"/ws/chat/admin/{people['conv'].pk}/", client, sockets)
    await sweep()
    assert await still_open(lobby)

    def demote() -> None:
        people["staff"].is_staff = False
        people["staff"].save()

    await db(demote)()
    await sweep()
    assert await closed_with(lobby) == consumers.CLOSE_FORBIDDEN
    assert await closed_with(inside) == consumers.CLOSE_FORBIDDEN


async def test_demoted_staff_keeps_their_customer_socket(people, sockets):
    """Not staff any more is no reason to close a socket that never needed staff."""
    conversation = await db(Conversation.objects.create)(customer=people["staff"])
    client = await db(signed_in)(people["staff"])
    own = await open_with_client(f"/ws/chat/user/{conversation.pk}/", client, sockets)

    def demote() -> None:
        people["staff"].is_staff = False
        people["staff"].save()

    await db(demote)()
    await sweep()
    assert await still_open(own)


async def test_deactivated_staff_closes_with_4401(people, sockets, settings):
    # A backend that lets inactive users through: the chat's own check does the refusing.
    settings.AUTHENTICATION_BACKENDS = ALL_USERS_BACKEND
    client = await db(signed_in)(people["staff"])
    lobby = await open_with_client("/ws/chat/admin/", client, sockets)

    def deactivate() -> None:
        people["staff"].is_active = False
        people["staff"].save()

    await db(deactivate)()
    await sweep()
    assert await closed_with(lobby) == consumers.CLOSE_UNAUTHENTICATED


async def test_a_custom_staff_predicate_is_asked_again(people, sockets, chat_settings):
    client = await db(signed_in)(people["staff"])
    lobby = await open_with_client("/ws/chat/admin/", client, sockets)
    chat_settings(STAFF_PREDICATE="tests.predicates.support_desk")  # no such email
    await sweep()
    assert await closed_with(lobby) == consumers.CLOSE_FORBIDDEN


async def test_the_recheck_is_batched(people, sockets):
    """Many sockets, a fixed number of queries: the users in one, their sessions in one."""
    client = await db(signed_in)(people["staff"])
    for _ in range(5):
        await open_with_client("/ws/chat/admin/", client, sockets)
    for _ in range(5):
        await open_with_client(
            f"/ws/chat/user/{people['conv'].pk}/", await db(signed_in)(people["alice"]), sockets
        )
    watchdog = consumers.Watchdog.for_running_loop()
    sockets_now = [s for s in watchdog.sockets if s.user is not None]
    assert len(sockets_now) >= 10

    def run() -> int:
        entries = [(s.user.pk, s.auth_session_key, s.side == "staff") for s in sockets_now]
        with CaptureQueriesContext(connection) as queries:
            verdicts = tokens.recheck(entries)
        assert [v for v, _user in verdicts] == [None] * len(entries)
        return len(queries)

    assert await db(run)() == 2
