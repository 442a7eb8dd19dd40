"""Pushback, not backlog (#14; docs/protocol.md, "Slowing down"; sendqueue.py).

- The gate: at most SEND_QUEUE_LIMIT slots under threads released from other threads; None
  is unbounded; refusals logged at most once per window.
- REST on PostgreSQL: sends behind a conversation row locked from another connection pile
  up to the limit; the next POST is answered 503 with Retry-After at once and stores
  nothing; after the lock is gone its retry (same client_id) is stored once.
- The inbox reply: 503 with Retry-After while the gate is full; the retry is stored once.
- A live uvicorn worker on PostgreSQL through a small psycopg pool, 100 and then 500
  concurrent clients (real users' session cookies) posting and reading: every answer is
  2xx, 429 or 503 with Retry-After, no other 5xx, and every message is stored once.
- A PostgreSQL that refuses the worker's connections ("too many connections for role")
  answers 503, not 500, on the API and the inbox; the retry is stored once when it lets
  the worker in again.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import string
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from django_support_chat import sendqueue
from django_support_chat.models import Conversation, Message

from .conftest import API
from .factories import ConversationFactory, UserFactory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def require_postgresql() -> None:
    assert connection.vendor == "postgresql", (
        f"the pushback tests need PostgreSQL, not {connection.vendor}: set "
        "DATABASE_URL=postgres://... or deselect them with -m 'not postgres'"
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s")
        time.sleep(0.01)


class RowLock:
    """``SELECT ... FOR UPDATE`` of a conversation row, held in a transaction of another
    thread (and database connection) until ``release()``: every send to it waits."""

    def __init__(self, pk: int) -> None:
        self.pk = pk
        self.locked = threading.Event()
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=self.pk)
                self.locked.set()
                self.released.wait(60)
        finally:
            connection.close()

    def __enter__(self) -> RowLock:
        self.thread.start()
        assert self.locked.wait(10), "could not lock the row"
        return self

    def release(self) -> None:
        self.released.set()
        self.thread.join(10)

    def __exit__(self, *exc: Any) -> None:
        self.release()


# -- the gate ------------------------------------------------------------------------------


def test_the_gate_admits_exactly_the_limit_under_threads():
    gate, threads, limit = sendqueue.SendGate(), 32, 5
    barrier = threading.Barrier(threads)
    got: list[sendqueue.Slot | None] = []
    lock = threading.Lock()

    def acquire() -> None:
        barrier.wait(10)
        slot = gate.try_acquire(limit)
        with lock:
            got.append(slot)

    run_threads(acquire, threads)
    slots = [slot for slot in got if slot is not None]
    assert len(slots) == limit and gate.pending == limit

    # Released from other threads, each twice: a slot is given back once.
    def release() -> None:
        barrier.wait(10)
        with lock:
            slot = slots.pop() if slots else None
        if slot is not None:
            slot.release()
            slot.release()

    run_threads(release, threads)
    assert gate.pending == 0

    # Many rounds at once: the count never goes above the limit, and ends at 0.
    seen: list[int] = []

    def churn() -> None:
        barrier.wait(10)
        for _ in range(500):
            slot = gate.try_acquire(limit)
            if slot is not None:
                with slot:
                    seen.append(gate.pending)

    run_threads(churn, threads)
    assert seen and max(seen) <= limit
    assert gate.pending == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refused_clients_are_asked_to_wait_in_proportion_to_the_demand(settings):
    """Told the same retry_after, every refused client comes back in the same second and
    is refused again; the wait grows with the sends offered per send taken lately."""
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": 2, "SEND_RETRY_AFTER": 1.0}
    clock = Clock()
    gate = sendqueue.SendGate(clock)
    first, second = gate.acquire("ws"), gate.acquire("ws")  # 2 taken
    waits = []
    for _ in range(8):
        with pytest.raises(sendqueue.Overloaded) as refused:
            gate.acquire("ws")
        waits.append(refused.value.retry_after)
    # (taken + refused) / taken, with 2 taken and 0, 1, 2 ... refused before
    assert waits == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    for _ in range(30):
        with pytest.raises(sendqueue.Overloaded) as refused:
            gate.acquire("http")
    assert refused.value.retry_after == gate.MAX_BACKOFF  # at most 10 times

    # Counted over the current and the previous second only.
    clock.now += gate.BACKOFF_BUCKET
    with pytest.raises(sendqueue.Overloaded) as refused:
        gate.acquire("ws")
    assert refused.value.retry_after == gate.MAX_BACKOFF  # the previous second counts
    first.release()
    second.release()
    clock.now += 2 * gate.BACKOFF_BUCKET
    assert gate.backoff() == 1.0
    slots = [gate.acquire("ws") for _ in range(2)]
    with pytest.raises(sendqueue.Overloaded) as refused:
        gate.acquire("inbox")
    assert refused.value.retry_after == 1.0
    for slot in slots:
        slot.release()
    assert gate.pending == 0


def test_a_refused_send_is_owed_a_place_when_it_comes_back(settings):
    """Clients that were just answered send again at once and would take every freed
    slot; a refused send, back after its retry_after with the same client_id, is taken
    even while the queue is full (once, and up to OWED_HEADROOM x the limit)."""
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": 2, "SEND_RETRY_AFTER": 1.0}
    clock = Clock()
    gate = sendqueue.SendGate(clock)
    held = [gate.acquire("ws", client_id=lambda: str(uuid.uuid4())) for _ in range(2)]
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    for key in (a, b, c):
        with pytest.raises(sendqueue.Overloaded):
            gate.acquire("ws", client_id=lambda key=key: key)
    with pytest.raises(sendqueue.Overloaded):
        gate.acquire("ws", client_id=lambda: str(uuid.uuid4()))  # a new send: the queue is full
    held.append(gate.acquire("ws", client_id=lambda: a))  # back: taken beyond the limit
    assert gate.pending == 3
    with pytest.raises(sendqueue.Overloaded):
        gate.acquire("ws", client_id=lambda: a)  # owed once: a second resend waits its turn
    # The key is asked for only when the send would be refused.
    asked: list[str] = []
    held.append(gate.acquire("ws", client_id=lambda: asked.append(b) or b))
    assert asked == [b] and gate.pending == 4
    with pytest.raises(sendqueue.Overloaded):
        gate.acquire("ws", client_id=lambda: c)  # OWED_HEADROOM x the limit: even owed sends wait
    for slot in held:
        slot.release()
    assert gate.pending == 0

    # A place is owed for OWED_FOR x the longest retry_after only.
    held = [gate.acquire("ws") for _ in range(2)]
    with pytest.raises(sendqueue.Overloaded):
        gate.acquire("ws", client_id=lambda: b)
    clock.now += gate.OWED_FOR * gate.MAX_BACKOFF * 1.0 + 0.1
    with pytest.raises(sendqueue.Overloaded):
        gate.acquire("ws", client_id=lambda: b)
    assert gate.acquire("ws", client_id=lambda: b) is not None  # refused just now: owed again

    # At most OWED_MAX are remembered, the oldest forgotten first.
    gate.OWED_MAX = 2
    for key in (a, b, c):
        with pytest.raises(sendqueue.Overloaded):
            gate.acquire("ws", client_id=lambda key=key: key)
    with pytest.raises(sendqueue.Overloaded):
        gate.acquire("ws", client_id=lambda: a)  # forgotten
    assert gate.acquire("ws", client_id=lambda: c) is not None


def test_a_client_id_is_the_key_only_as_a_uuid():
    value = uuid.uuid4()
    assert sendqueue.retry_key(str(value).upper()) == str(value)
    assert sendqueue.retry_key("not-a-uuid") is None
    assert sendqueue.retry_key(None) is None
    assert sendqueue.retry_key(123) is None


@pytest.mark.django_db
def test_rest_a_refused_send_sent_again_is_stored_while_the_gate_is_full(settings):
    """Through the API: the gate full (other sends in progress in this process), a POST is
    refused; a new one too; the first, sent again with its client_id, is stored."""
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": 1, "SEND_RETRY_AFTER": 1.0}
    customer = UserFactory(customer=True)
    conversation = ConversationFactory(customer=customer)
    client = Client()
    client.force_login(customer)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    taken = sendqueue.gate.try_acquire()
    assert taken is not None
    try:
        assert post_message(client, conversation.pk, first).status_code == 503
        assert post_message(client, conversation.pk, second).status_code == 503
        stored = post_message(client, conversation.pk, first, "Hello again")
        assert stored.status_code == 201, stored.content
        assert stored.json()["client_id"] == first
        assert post_message(client, conversation.pk, first).status_code == 503  # owed once
        # A body that is not JSON is owed nothing and keeps its usual answer later.
        bad = client.post(
            f"{API}conversations/{conversation.pk}/messages/", "{", content_type="application/json"
        )
        assert bad.status_code == 503
    finally:
        taken.release()
    assert post_message(client, conversation.pk, second).status_code == 201
    assert Counter(str(c) for c in Message.objects.values_list("client_id", flat=True)) == {
        first: 1,
        second: 1,
    }
    assert sendqueue.gate.pending == 0


def run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)


def test_limit_none_is_unbounded_and_the_setting_is_read(settings):
    gate = sendqueue.SendGate()
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": None}
    slots = [gate.acquire("http") for _ in range(1000)]
    assert gate.pending == 1000
    for slot in slots:
        slot.release()
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": 2, "SEND_RETRY_AFTER": 2.5}
    first, second = gate.acquire("ws"), gate.acquire("ws")
    with pytest.raises(sendqueue.Overloaded) as refused:
        gate.acquire("ws")
    assert refused.value.retry_after == 2.5
    assert sendqueue.retry_after_header() == "3"
    assert sendqueue.retry_after_header(0.2) == "1"  # whole seconds, at least 1
    first.release()
    gate.acquire("ws").release()  # a freed slot is taken again
    second.release()
    assert gate.pending == 0


def test_refusals_are_logged_at_most_once_per_window(caplog, monkeypatch):
    monkeypatch.setattr(sendqueue, "_log_state", {})
    caplog.set_level(logging.WARNING, logger="django_support_chat.sendqueue")
    for _ in range(50):
        sendqueue.note_rejected("ws", sendqueue.OVERLOADED, pending=3)
    sendqueue.note_rejected("http", sendqueue.UNAVAILABLE, method="GET")
    lines = [r for r in caplog.records if r.name == "django_support_chat.sendqueue"]
    assert [(r.event, r.interface, r.refused) for r in lines] == [  # type: ignore[attr-defined]
        ("send.overloaded", "ws", 1),
        ("db.unavailable", "http", 1),
    ]
    assert lines[0].getMessage().startswith("send.overloaded interface=ws refused=1 pending=3")
    # The next line, once the window is over, counts the refusals it stands for.
    monkeypatch.setattr(sendqueue, "LOG_WINDOW", 0.0)
    sendqueue.note_rejected("ws", sendqueue.OVERLOADED, pending=3)
    assert caplog.records[-1].refused == 50  # type: ignore[attr-defined]


# -- REST and the inbox, in process ---------------------------------------------------------


def rejected(interface: str, name: str = "support_chat_sends_rejected_total") -> float:
    """The counter's value now (prometheus-client is in the test extra)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"interface": interface}) or 0.0


def post_message(client: Client, pk: int, client_id: str, text: str = "Hello") -> Any:
    return client.post(
        f"{API}conversations/{pk}/messages/",
        {"text": text, "client_id": client_id},
        content_type="application/json",
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rest_sends_behind_a_locked_row_get_503_then_are_stored_once(settings):
    require_postgresql()
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": 3, "SEND_RETRY_AFTER": 1.5}
    customer = UserFactory(customer=True)
    conversation = ConversationFactory(customer=customer)
    clients = []
    for _ in range(4):
        client = Client()
        client.force_login(customer)
        clients.append(client)
    ids = [str(uuid.uuid4()) for _ in clients]
    answers: dict[int, int] = {}

    def send(n: int) -> None:
        try:
            answers[n] = post_message(clients[n], conversation.pk, ids[n], f"m{n}").status_code
        finally:
            connection.close()

    with RowLock(conversation.pk) as lock:
        waiting = [threading.Thread(target=send, args=(n,)) for n in range(3)]
        for thread in waiting:
            thread.start()
        wait_for(lambda: sendqueue.gate.pending == 3, 10, "three sends waiting")
        before = rejected("http")
        started = time.monotonic()
        refused = post_message(clients[3], conversation.pk, ids[3], "m3")
        assert time.monotonic() - started < 1.0, "answered at once, not queued"
        assert refused.status_code == 503
        assert refused["Retry-After"] == "2"
        assert refused.json() == {
            "detail": "The server is busy; try again shortly.",
            "code": "overloaded",
            "retry_after": 1.5,
        }
        assert rejected("http") == before + 1
        assert Message.objects.count() == 0
        lock.release()
        for thread in waiting:
            thread.join(10)
    assert answers == {0: 201, 1: 201, 2: 201}
    assert post_message(clients[3], conversation.pk, ids[3], "m3").status_code == 201
    assert post_message(clients[0], conversation.pk, ids[0], "m0").status_code == 200  # resend
    stored = Counter(str(c) for c in Message.objects.values_list("client_id", flat=True))
    assert stored == dict.fromkeys(ids, 1)
    assert sendqueue.gate.pending == 0


@pytest.mark.django_db
def test_inbox_reply_gets_503_while_the_gate_is_full_and_the_retry_is_stored_once(settings):
    settings.SUPPORT_CHAT = {"SEND_QUEUE_LIMIT": 1, "SEND_RETRY_AFTER": 1.0}
    staff = UserFactory(staff=True)
    conversation = ConversationFactory(customer=UserFactory(customer=True))
    client = Client()
    client.force_login(staff)
    url = reverse("support_chat_inbox:reply", args=[conversation.pk])
    form = {"text": "On it", "client_id": str(uuid.uuid4())}
    htmx = {"HTTP_HX_REQUEST": "true"}
    taken = sendqueue.gate.try_acquire()  # another send in progress in this process
    assert taken is not None
    before = rejected("inbox")
    try:
        busy = client.post(url, form, **htmx)
        assert busy.status_code == 503
        assert busy["Retry-After"] == "1"
        assert busy["HX-Retarget"] == "#sc-alerts"
        assert "The server is busy" in busy.content.decode()
        assert 'data-level="warning"' in busy.content.decode()
        other = {"text": "Also", "client_id": str(uuid.uuid4())}
        assert client.post(url, other).status_code == 503  # without htmx: plain text
        assert rejected("inbox") == before + 2
        assert Message.objects.count() == 0
        # The refused reply, sent again while the gate is still full, is owed a place.
        assert client.post(url, form, **htmx).status_code == 200
        assert Message.objects.filter(client_id=form["client_id"]).count() == 1
        assert rejected("inbox") == before + 2
    finally:
        taken.release()
    assert client.post(url, form, **htmx).status_code == 200  # a resend: still one row
    assert Message.objects.filter(client_id=form["client_id"]).count() == 1
    assert sendqueue.gate.pending == 0


# -- a live uvicorn worker on PostgreSQL -------------------------------------------------


def start_worker(extra_env: dict[str, str]) -> tuple[Any, str, str]:
    from .e2e.conftest import start_server

    pythonpath = os.pathsep.join(
        [os.path.join(ROOT, "example_project"), os.path.join(ROOT, "src"), ROOT]
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.pushback_settings",
        "PYTHONPATH": pythonpath,
        "E2E_SERVER_LOG_LEVEL": "info",
        **extra_env,
    }
    process, base = start_server(env)
    port = base.rsplit(":", 1)[1]
    return process, base, os.path.join(ROOT, f".e2e-server-{port}.log")


def sessions_for(users: list[Any]) -> dict[int, str]:
    from .realtime.test_storms import bulk_sessions

    return bulk_sessions(users)


class HttpUser:
    """One browser-like client: the user's session cookie and a CSRF cookie + header."""

    def __init__(self, base: str, session_key: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.csrf = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        self.cookie = f"{django_settings.SESSION_COOKIE_NAME}={session_key}; csrftoken={self.csrf}"
        self.answers: list[tuple[str, int, str | None, bytes]] = []

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, str | None, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        headers = {"Cookie": self.cookie, "Accept": "application/json"}
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["X-CSRFToken"] = self.csrf
            payload = json.dumps(body)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            answer = (response.status, response.getheader("Retry-After"), response.read())
        finally:
            conn.close()
        self.answers.append((f"{method} {path}", *answer))
        return answer

    def until_done(self, method: str, path: str, body: Any = None, tries: int = 100) -> bytes:
        """Like the widget: 429 and 503 are sent again after Retry-After (plus jitter)."""
        for _ in range(tries):
            status, retry_after, data = self.call(method, path, body)
            if status < 300:
                return data
            if status not in (429, 503) or retry_after is None:
                raise AssertionError(f"{method} {path}: {status} {data[:300]!r}")
            time.sleep(int(retry_after) + secrets.randbelow(500) / 1000)
        raise AssertionError(f"{method} {path}: still refused after {tries} tries")


def check_answers(users: list[HttpUser]) -> Counter[Any]:
    """Every answer 2xx, 429 or 503 with Retry-After (and the chat's body); tally them."""
    tally: Counter[Any] = Counter()
    for user in users:
        for what, status, retry_after, data in user.answers:
            assert status in (200, 201, 429, 503), (what, status, data[:300])
            if status == 503:
                assert retry_after is not None and retry_after.isdigit(), (what, retry_after)
                assert int(retry_after) >= 1
                body = json.loads(data)
                assert body["code"] in ("overloaded", "unavailable"), body
                assert body["retry_after"] > 0
                tally[(what.split()[0], 503, body["code"])] += 1
            else:
                tally[(what.split()[0], status)] += 1
    return tally


def assert_clean_log(path: str) -> None:
    with open(path) as log:
        text = log.read()
    assert "Traceback" not in text, text[-3000:]
    assert " 500 " not in text and "Internal Server Error" not in text, text[-3000:]


@pytest.fixture
def pooled_worker(transactional_db: None) -> Iterator[tuple[str, str]]:
    require_postgresql()
    # A pool far smaller than the number of request threads, with a short wait: requests
    # that find no connection in time fail with PoolTimeout; a small send limit.
    process, base, log = start_worker({"PUSHBACK_POOL": "3,0.3", "PUSHBACK_LIMIT": "8"})
    yield base, log
    from .e2e.conftest import stop_server

    stop_server(process)


def load_round(
    base: str, users: list[Any], keys: dict[int, str], conversations: dict[int, int]
) -> tuple[list[str], Counter[Any]]:
    """Every user at once: POST a message (again after 429/503, same client_id) until it
    is stored, then GET the history, which must hold it. Returns the client_ids stored and
    the tally of answers (all checked by ``check_answers``)."""
    http_users = [HttpUser(base, keys[u.pk]) for u in users]
    barrier = threading.Barrier(len(users))
    errors: list[BaseException] = []
    sent: list[str] = []
    lock = threading.Lock()

    def client(n: int, user: Any, http_user: HttpUser) -> None:
        try:
            path = f"{API}conversations/{conversations[user.pk]}/messages/"
            client_id = str(uuid.uuid4())
            barrier.wait(60)
            body = {"text": f"hi {n}", "client_id": client_id}
            stored = json.loads(http_user.until_done("POST", path, body))
            assert stored["client_id"] == client_id
            with lock:
                sent.append(client_id)
            history = json.loads(http_user.until_done("GET", path))
            assert client_id in {m["client_id"] for m in history["results"]}
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=client, args=(n, u, h))
        for n, (u, h) in enumerate(zip(users, http_users, strict=True))
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    if errors:
        raise errors[0]
    tally = check_answers(http_users)
    print(f"{len(users)} clients in {time.monotonic() - started:.1f}s:", dict(tally))
    assert len(sent) == len(users)
    return sent, tally


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_5xx_under_concurrency_only_pushback(pooled_worker):
    base, log = pooled_worker
    User = get_user_model()
    everyone = User.objects.bulk_create([User(username=f"load{i}") for i in range(500)])
    conversations = {
        c.customer_id: c.pk
        for c in Conversation.objects.bulk_create([Conversation(customer=u) for u in everyone])
    }
    keys = sessions_for(everyone)
    done_ids: list[str] = []
    for clients in (100, 500):
        sent, tally = load_round(base, everyone[:clients], keys, conversations)
        done_ids += sent
        if clients == 500:
            refused = sum(n for key, n in tally.items() if key[1] == 503)
            assert refused, f"500 clients on a pool of 3 were never refused: {dict(tally)}"
    stored = Counter(str(c) for c in Message.objects.values_list("client_id", flat=True))
    assert stored == dict.fromkeys(done_ids, 1), "every message stored exactly once"
    assert_clean_log(log)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_that_refuses_the_worker_answers_503_not_500():
    require_postgresql()
    import psycopg

    role = f"pushback_{os.getpid()}"
    settings_dict = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {role}")
        cursor.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
    url = f"postgres://{role}@{host}:{port}/{settings_dict['NAME']}"
    customer = UserFactory(customer=True)
    staff = UserFactory(staff=True)
    conversation = ConversationFactory(customer=customer)
    keys = sessions_for([customer, staff])
    # No pool: every request opens a connection of its own, as the role allows or not.
    process, base, log = start_worker({"DATABASE_URL": url, "PUSHBACK_POOL": ""})
    held: list[Any] = []
    try:
        user, staff_user = HttpUser(base, keys[customer.pk]), HttpUser(base, keys[staff.pk])
        path = f"{API}conversations/{conversation.pk}/messages/"
        user.until_done("GET", path)  # the role works

        # PostgreSQL lets the role in twice: the test takes both connections.
        held = [
            psycopg.connect(f"host={host} port={port} user={role} dbname={settings_dict['NAME']}")
            for _ in range(2)
        ]
        client_id = str(uuid.uuid4())
        for method, body in (("GET", None), ("POST", {"text": "hi", "client_id": client_id})):
            status, retry_after, data = user.call(method, path, body)
            assert status == 503, (method, status, data[:300])
            assert retry_after == "1"
            assert json.loads(data) == {
                "detail": "The service is unavailable; try again shortly.",
                "code": "unavailable",
                "retry_after": 0.5,
            }
        status, retry_after, data = user.call("GET", f"{API}unread_count")  # any endpoint
        assert (status, retry_after) == (503, "1")
        status, retry_after, data = staff_user.call("GET", "/admin/chat/")
        assert (status, retry_after) == (503, "1"), data[:300]
        assert b"unavailable" in data

        for conn in held:
            conn.close()
        held = []
        stored = json.loads(user.until_done("POST", path, {"text": "hi", "client_id": client_id}))
        assert stored["client_id"] == client_id
        assert Message.objects.filter(client_id=client_id).count() == 1
        check_answers([user])
    finally:
        for conn in held:
            conn.close()
        from .e2e.conftest import stop_server

        stop_server(process)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")
    assert_clean_log(log)
    with open(log) as text:
        assert "db.unavailable interface=http" in text.read()
