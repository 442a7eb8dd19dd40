"""The foreign host on a real uvicorn (DEBUG off, whitenoise, the Redis channel layer):
hashed static files, the chat's sockets and the host's own socket over the network with
the ``websockets`` client. After every test the server's log must be clean (fixture)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .conftest import api_client, session_cookie
from .helpers import TEAM_NAME, start_conversation

pytestmark = pytest.mark.django_db(transaction=True)


def get(url: str, cookie: str | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url)
    if cookie:
        request.add_header("Cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def chat_socket(server: Any, path: str, user: Any, origin: str | None = "self") -> Any:
    headers = {"Cookie": f"{django_settings.SESSION_COOKIE_NAME}={session_cookie(user)}"}
    return connect(
        server.ws_base + path,
        additional_headers=headers,
        origin=server.base if origin == "self" else origin,
        open_timeout=10,
    )


def frame_of(ws: Any, type_: str, where: Any = None, timeout: float = 10) -> dict[str, Any]:
    """The next frame of ``type_`` (matching ``where``), skipping others."""
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        if frame["type"] == type_ and (where is None or where(frame)):
            return frame


def test_pages_and_hashed_static_files_are_served(host_server, customer):
    status, body, _ = get(host_server.base + "/", session_cookie(customer))
    assert status == 200
    page = body.decode()
    assert "support-chat-launcher" in page
    # Every static URL of the page is a hashed name that whitenoise serves, with caching.
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    config = json.loads(re.search(r'id="support-chat-config"[^>]*>(.*?)</script>', page, re.S)[1])
    urls += [config["assets"]["js"], config["assets"]["css"]]
    assert any("bootstrap.min." in u for u in urls)
    assert len(urls) >= 5, urls
    for url in urls:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", url), url
        status, _body, headers = get(host_server.base + url)
        assert status == 200, url
        assert "max-age" in headers.get("Cache-Control", ""), url


def test_inbox_page_over_uvicorn(host_server, staff, customer):
    start_conversation(api_client(customer))
    status, body, _ = get(host_server.base + "/backoffice/support/", session_cookie(staff))
    assert status == 200
    assert 'id="sc-inbox"' in body.decode()
    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', body.decode()):
        assert get(host_server.base + url)[0] == 200, url


def test_customer_and_staff_sockets_over_uvicorn(host_server, customer, staff):
    conversation_id = start_conversation(api_client(customer))["id"]
    with (
        chat_socket(host_server, f"/ws/chat/user/{conversation_id}/", customer) as mine,
        chat_socket(host_server, f"/ws/chat/admin/{conversation_id}/", staff) as theirs,
    ):
        assert frame_of(mine, "hello")["data"]["side"] == "user"
        assert frame_of(theirs, "hello")["data"]["side"] == "staff"
        mine.send(
            json.dumps(
                {
                    "type": "message:send",
                    "data": {"text": "Over the network", "client_id": str(uuid.uuid4())},
                }
            )
        )
        assert frame_of(mine, "message:sent")["data"]["message"]["text"] == "Over the network"
        assert frame_of(theirs, "message:new")["data"]["message"]["text"] == "Over the network"
        theirs.send(
            json.dumps(
                {"type": "message:send", "data": {"text": "Hi!", "client_id": str(uuid.uuid4())}}
            )
        )
        reply = frame_of(
            mine, "message:new", lambda f: f["data"]["message"]["sender_side"] == "staff"
        )["data"]["message"]
        assert reply["text"] == "Hi!"
        assert reply["sender"]["name"] == TEAM_NAME


def test_chat_route_without_origin_is_refused_over_uvicorn(host_server, customer):
    conversation_id = start_conversation(api_client(customer))["id"]
    with pytest.raises(InvalidStatus) as refused:
        chat_socket(host_server, f"/ws/chat/user/{conversation_id}/", customer, origin=None)
    assert refused.value.response.status_code == 403


def test_the_hosts_echo_without_origin_over_uvicorn(host_server):
    with connect(host_server.ws_base + "/ws/echo/", open_timeout=10) as ws:
        assert "Origin" not in ws.request.headers
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=10) == b"\x01\x02"


@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/chat/nope/"])
def test_unknown_socket_paths_are_refused_without_a_server_error(host_server, path):
    with pytest.raises(InvalidStatus) as refused:
        connect(host_server.ws_base + path, origin=host_server.base, open_timeout=10)
    assert refused.value.response.status_code == 403
