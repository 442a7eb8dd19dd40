"""Pushback on a late event loop (sendqueue.LoopLag, SEND_MAX_LAG): a worker whose loop is
saturated refuses sends even while few of them wait for the database."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from django_support_chat import sendqueue


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_blocked_loop_refuses_sends_until_it_catches_up(settings):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": 0.2, "SEND_QUEUE_LIMIT": 50}
    lag = sendqueue.loop_lag
    lag.start()
    await wait_until(lambda: lag.due is not None)
    sendqueue.gate.acquire("ws").release()  # on time: accepted

    time.sleep(0.4)  # noqa: ASYNC251 - the loop does nothing else meanwhile, as under load
    # Read from another thread too, as a REST request does.
    seen: list[float] = []
    reader = threading.Thread(target=lambda: seen.append(lag.current()))
    reader.start()
    reader.join()
    assert seen[0] >= 0.3
    with pytest.raises(sendqueue.Overloaded):
        sendqueue.gate.acquire("ws")

    await wait_until(lambda: lag.current() < 0.2)  # the next wake-ups are on time
    sendqueue.gate.acquire("ws").release()


@pytest.mark.asyncio
async def test_no_limit_on_lag_when_turned_off(settings):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": None}
    sendqueue.loop_lag.start()
    await wait_until(lambda: sendqueue.loop_lag.due is not None)
    time.sleep(0.4)  # noqa: ASYNC251 - block the loop on purpose
    sendqueue.gate.acquire("ws").release()


def test_without_a_loop_there_is_no_lag():
    idle = sendqueue.LoopLag()
    assert idle.current() == 0.0
