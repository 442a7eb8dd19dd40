"""Pushback on a late event loop (sendqueue.LoopLag, SEND_MAX_LAG): a worker whose loop
stays behind refuses sends even while few of them wait for the database; one pause alone
refuses nothing."""

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


async def late_wake_up(lag: sendqueue.LoopLag) -> None:
    """Block the loop 0.4 s, as a CPU-bound burst does, and let the monitor see it."""
    seen = lag.samples
    time.sleep(0.4)  # noqa: ASYNC251 - blocking the loop is the point
    await wait_until(lambda: lag.samples > seen)


async def stay_behind(lag: sendqueue.LoopLag) -> None:
    """Pause until two wake-ups in a row were late. (On a crowded loop an on-time wake-up
    can slip in between two pauses; the next pause then makes the pair.)"""
    for _ in range(5):
        await late_wake_up(lag)
        if min(lag.last, lag.previous) >= 0.3:
            return


@pytest.fixture
def lag(monkeypatch) -> sendqueue.LoopLag:
    """A monitor of this test's own: none that earlier tests started on their loops
    (sockets start the module's one) can write into it."""
    own = sendqueue.LoopLag()
    monkeypatch.setattr(sendqueue, "loop_lag", own)
    return own


@pytest.mark.asyncio
async def test_a_loop_that_stays_behind_refuses_sends_until_it_catches_up(settings, lag):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": 0.2, "SEND_QUEUE_LIMIT": 50}
    lag.start()
    await wait_until(lambda: lag.samples >= 2)
    sendqueue.gate.acquire("ws").release()  # on time: accepted

    await late_wake_up(lag)
    sendqueue.gate.acquire("ws").release()  # one pause alone refuses nothing

    await stay_behind(lag)  # two late wake-ups in a row
    seen: list[float] = []  # read from another thread too, as a REST request does
    reader = threading.Thread(target=lambda: seen.append(lag.current()))
    reader.start()
    reader.join()
    assert seen[0] >= 0.3
    with pytest.raises(sendqueue.Overloaded):
        sendqueue.gate.acquire("ws")

    await wait_until(lambda: lag.current() < 0.2)  # the next wake-ups are on time
    sendqueue.gate.acquire("ws").release()


@pytest.mark.asyncio
async def test_no_limit_on_lag_when_turned_off(settings, lag):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": None}
    lag.start()
    await wait_until(lambda: lag.samples >= 1)
    await stay_behind(lag)
    sendqueue.gate.acquire("ws").release()


@pytest.mark.asyncio
async def test_a_cancelled_monitor_reads_no_lag_and_starts_again(lag):
    lag.start()
    await wait_until(lambda: lag.samples >= 1)
    await stay_behind(lag)
    assert lag.current() >= 0.3
    lag.task.cancel()  # as when the tasks of a loop are cancelled
    await wait_until(lambda: lag.task.done())
    assert lag.current() == 0.0  # stale figures refuse nothing
    lag.start()
    assert not lag.task.done()
    seen = lag.samples
    await wait_until(lambda: lag.samples > seen)


def test_without_a_loop_there_is_no_lag():
    assert sendqueue.LoopLag().current() == 0.0
