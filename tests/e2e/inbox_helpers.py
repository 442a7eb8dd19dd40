"""Helpers for the staff inbox end-to-end tests: a customer driven through the real
WebSocket and REST API of the example site (the widget is not needed), and shortcuts for
the inbox page."""

from __future__ import annotations

import json
import uuid
from typing import Any

from playwright.sync_api import Page, expect

OPEN_SOCKET = """
(id) => new Promise((resolve, reject) => {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(`${scheme}${location.host}/ws/chat/user/${id}/`);
  window.scFrames = [];
  window.scSocket = ws;
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    window.scFrames.push(frame);
    if (frame.type === "hello") {
      window.scBeat = setInterval(
        () => ws.readyState === 1 && ws.send(JSON.stringify({v: 1, type: "heartbeat", data: {}})),
        frame.data.heartbeat_interval * 1000,
      );
      resolve(frame.data);
    }
  };
  ws.onclose = (event) => { window.scClosed = event.code; reject(new Error("closed " + event.code)); };
})
"""


class Customer:
    """A signed-in customer on the example site, talking over ``ws/chat/user/<id>/``."""

    def __init__(self, page: Page) -> None:
        self.page = page
        # A page of the site sets the CSRF cookie; then a same-origin page without the
        # widget, so that only this driver speaks for the customer (the widget would send
        # its own delivered/read receipts).
        self.page.goto("/")
        self.page.goto("/static/example/ui.css")
        self.conversation_id: int | None = None

    def start_conversation(self) -> int:
        """``GET /api/chat/conversations/``: the customer's conversation, created on demand
        (which tells the staff lobby ``conversation:new``)."""
        response = self.page.request.get("/api/chat/conversations/")
        assert response.ok, response.text()
        self.conversation_id = response.json()["results"][0]["id"]
        return self.conversation_id

    def connect(self) -> dict[str, Any]:
        if self.conversation_id is None:
            self.start_conversation()
        return self.page.evaluate(OPEN_SOCKET, self.conversation_id)

    def frame(self, data: dict[str, Any] | None = None, type_: str = "") -> None:
        self.page.evaluate(
            "(frame) => window.scSocket.send(JSON.stringify(frame))",
            {"v": 1, "type": type_, "data": data or {}, "ref": uuid.uuid4().hex},
        )

    def send(self, text: str) -> dict[str, Any]:
        """Send over the socket and return the stored message (``message:sent``)."""
        ref = uuid.uuid4().hex
        self.page.evaluate(
            "(frame) => window.scSocket.send(JSON.stringify(frame))",
            {
                "v": 1,
                "type": "message:send",
                "data": {"text": text, "client_id": str(uuid.uuid4())},
                "ref": ref,
            },
        )
        handle = self.page.wait_for_function(
            "(ref) => window.scFrames.find((f) => f.ref === ref)", arg=ref, timeout=10_000
        )
        frame = handle.json_value()
        assert frame["type"] == "message:sent", frame
        return frame["data"]["message"]

    def send_via_api(self, text: str) -> dict[str, Any]:
        """``POST /api/chat/conversations/<id>/messages/`` with the CSRF header."""
        token = next(c["value"] for c in self.page.context.cookies() if c["name"] == "csrftoken")
        response = self.page.request.post(
            f"/api/chat/conversations/{self.conversation_id}/messages/",
            data=json.dumps({"text": text, "client_id": str(uuid.uuid4())}),
            headers={"Content-Type": "application/json", "X-CSRFToken": token},
        )
        assert response.status == 201, response.text()
        return response.json()

    def wait_for(
        self, type_: str, condition: str = "true", timeout: float = 10_000
    ) -> dict[str, Any]:
        """The first received frame of ``type_`` whose ``data`` (``d``) satisfies the JS
        ``condition``."""
        handle = self.page.wait_for_function(
            f"() => window.scFrames.find((f) => f.type === {json.dumps(type_)} && ((d) => {condition})(f.data))",
            timeout=timeout,
        )
        return handle.json_value()["data"]


def open_inbox(page: Page, path: str = "/admin/chat/") -> None:
    page.goto(path)
    expect(page.locator("#sc-live")).to_have_attribute("data-live", "on", timeout=10_000)


def row(page: Page, conversation_id: int) -> Any:
    return page.locator(f"#sc-row-{conversation_id}")


def wait_chat_connected(page: Page) -> None:
    """Until the open conversation's socket has said hello (typing and receipts flow)."""
    expect(page.locator(".sc-conversation")).to_have_attribute("data-live", "on", timeout=10_000)


def watch_errors(page):
    """Script errors and failed requests of ``page`` (the browser's own favicon probe aside)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors
