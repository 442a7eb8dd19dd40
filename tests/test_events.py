"""Publishing from a consumer: ``events.call_and_publish`` runs a service on the database
thread and sends the events it committed from the event loop, after the call returns."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.db import transaction

from django_support_chat import events

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

GROUP = events.STAFF_GROUP


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from channels.layers import get_channel_layer

    return get_channel_layer()


@pytest.fixture
async def listener(layer):
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)

    async def received(timeout: float = 1.0) -> list[dict]:
        out = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout)
            except asyncio.TimeoutError:
                return out
            out.append(json.loads(message["text"]))
            timeout = 0.05

    return received


def committed(*numbers: int) -> None:
    for n in numbers:
        with transaction.atomic():
            events.publish([GROUP], "test:event", {"n": n})


async def test_events_are_sent_after_the_database_call_returns(layer, listener, monkeypatch):
    call_done = threading.Event()
    seen_while_running = []
    group_send = layer.group_send

    async def recording_group_send(group, message):
        seen_while_running.append(not call_done.is_set())
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", recording_group_send)

    def work() -> str:
        committed(1, 2)
        call_done.set()  # the events were committed above; none may have gone out yet
        return "result"

    assert await events.call_and_publish(work) == "result"
    assert [e["data"]["n"] for e in await listener()] == [1, 2]  # in commit order
    assert seen_while_running == [False, False]


async def test_events_of_a_commit_go_out_even_if_the_call_then_fails(listener):
    def work() -> None:
        committed(1)
        with transaction.atomic():
            events.publish([GROUP], "test:event", {"n": 2})
            raise RuntimeError("after the first commit")

    with pytest.raises(RuntimeError):
        await events.call_and_publish(work)
    assert [e["data"]["n"] for e in await listener()] == [1]  # not the rolled-back one


async def test_a_cancelled_caller_still_publishes_once_the_call_ends(listener):
    started = threading.Event()
    release = threading.Event()

    def work() -> None:
        committed(7)
        started.set()
        release.wait(5)

    caller = asyncio.ensure_future(events.call_and_publish(work))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await listener(timeout=0.2) == []  # the database call is still running
    release.set()
    assert [e["data"]["n"] for e in await listener()] == [7]


async def test_synchronous_callers_publish_on_commit(layer, listener):
    from channels.db import database_sync_to_async

    # a view or a command: no call_and_publish around it
    await database_sync_to_async(committed)(3)
    assert [e["data"]["n"] for e in await listener()] == [3]
