"""Pushback on a late event loop (sendqueue.LoopLag, SEND_MAX_LAG): a worker whose loop
stays behind refuses sends even while few of them wait for the database; one pause alone
refuses nothing, nor does a late worker offered only a few sends (SendGate.LAG_DEMAND)."""

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


def make_demand(gate: sendqueue.SendGate | None = None) -> None:
    """Offer sends at once, as a busy site does, until ``LAG_DEMAND`` were offered in the
    last second or two; each one is taken (and stored at once: released), so the next
    one meets a worker with demand."""
    gate = gate or sendqueue.gate
    for _ in range(gate.LAG_DEMAND - sum(gate._recent())):
        gate.acquire("ws").release()


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
    # A late worker offered a few sends takes them (late for another reason: refusing
    # them would not make it catch up) until they come LAG_DEMAND in a second or two.
    make_demand()
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


# -- DeliveryLag: how late this worker's own events reach its sockets --------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def late(monkeypatch, clock) -> sendqueue.DeliveryLag:
    own = sendqueue.DeliveryLag(clock)
    monkeypatch.setattr(sendqueue, "delivery_lag", own)
    return own


def test_late_deliveries_refuse_sends_until_they_are_on_time(settings, late, clock):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": 0.2, "SEND_QUEUE_LIMIT": 50}
    late.observe(0.01)
    sendqueue.gate.acquire("ws").release()  # on time: accepted

    clock.now += 0.1
    late.observe(0.5)  # one socket got an event half a second after it was published
    late.observe(0.01)  # a prompt one in the same window does not hide it
    assert late.current() == 0.5
    make_demand()
    with pytest.raises(sendqueue.Overloaded):
        sendqueue.gate.acquire("ws")
    with pytest.raises(sendqueue.Overloaded):
        sendqueue.gate.acquire("http")  # the worker's REST sends as well

    # The next window's deliveries are prompt: the late one still counts (the current
    # window and the one before it are read), then no more.
    clock.now += late.WINDOW
    late.observe(0.01)
    assert late.current() == 0.5
    clock.now += late.WINDOW
    late.observe(0.02)
    assert late.current() == 0.02
    sendqueue.gate.acquire("ws").release()


def test_no_delivery_for_two_windows_reads_as_no_lag(settings, late, clock):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": 0.2}
    late.observe(3.0)
    clock.now += late.WINDOW * 1.5
    assert late.current() == 3.0  # the last full window was late
    make_demand()
    with pytest.raises(sendqueue.Overloaded):
        sendqueue.gate.acquire("ws")
    clock.now += late.WINDOW * 0.5  # nothing delivered since: nothing can be behind
    assert late.current() == 0.0
    sendqueue.gate.acquire("ws").release()
    late.observe(0.01)  # the window before a gap is not carried over it
    assert late.current() == 0.01


def test_late_deliveries_refuse_nothing_when_the_limit_is_off(settings, late):
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": None}
    late.observe(3.0)
    make_demand()
    sendqueue.gate.acquire("ws").release()


def test_a_late_worker_offered_few_sends_takes_them(settings, late, clock):
    """The CI failure this guards against: a browser test's uvicorn, on a machine busy
    with four Chromium pages, ran more than 0.2 s late and refused the next lone REST
    send with 503. The demand counts sends offered over the last one to two seconds,
    taken and refused, so a busy late worker keeps refusing."""
    settings.SUPPORT_CHAT = {"SEND_MAX_LAG": 0.2, "SEND_QUEUE_LIMIT": 50}
    late.observe(3.0)
    gate = sendqueue.gate
    assert gate.LAG_DEMAND >= 10
    for _ in range(5):
        gate.acquire("http").release()  # a few a second: every one taken
    make_demand()
    for _ in range(3):
        with pytest.raises(sendqueue.Overloaded):
            gate.acquire("http")
    assert gate._recent() == (gate.LAG_DEMAND, 3)
