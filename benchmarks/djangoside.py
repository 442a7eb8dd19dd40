"""Everything the benchmark does through Django in its own process: migrate, fixtures,
WebSocket tokens, the inbox query counts (CaptureQueriesContext through the test client)
and the REST latencies (real HTTP against the uvicorn server).

Call ``setup()`` once, before any event loop runs: the ORM is used synchronously here.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

from infra import BENCH_DIR, ROOT

MESSAGE_TABLE = "support_chat_message"
CONVERSATION_TABLE = "support_chat_conversation"


def setup(database_url: str, redis_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    for p in (str(BENCH_DIR), str(ROOT / "example_project"), str(ROOT / "src")):
        if p not in sys.path:
            sys.path.insert(0, p)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def close_db() -> None:
    from django.db import connections

    connections.close_all()


# -- users and conversations ---------------------------------------------------------------------


def staff_users(count: int) -> list[Any]:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    users = []
    for i in range(count):
        user, _ = User.objects.get_or_create(
            username=f"bench-staff-{i}", defaults={"is_staff": True, "first_name": f"Agent {i}"}
        )
        users.append(user)
    return users


def ensure_conversations(total: int) -> list[tuple[int, int]]:
    """At least ``total`` customer conversations, each with one customer message and its own
    customer; returns ``(conversation_id, customer_id)`` of the first ``total`` bench ones."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from django_support_chat.models import Conversation

    User = get_user_model()
    have = Conversation.objects.filter(customer__username__startswith="bench-c-").count()
    if have < total:
        with transaction.atomic():
            users = User.objects.bulk_create(
                [User(username=f"bench-c-{i}", password="!") for i in range(have, total)],
                batch_size=2000,
            )
            Conversation.objects.bulk_create(
                [Conversation(customer=u) for u in users], batch_size=2000
            )
            with connection.cursor() as cur:
                # one customer message per new conversation, then the denormalised fields
                cur.execute(
                    f"""
                    INSERT INTO {MESSAGE_TABLE}
                        (conversation_id, sender_id, sender_side, text, client_id, created_at)
                    SELECT c.id, c.customer_id, 'user', 'Hello, I need help with my order',
                           gen_random_uuid(), now()
                    FROM {CONVERSATION_TABLE} c
                    WHERE c.last_message_id IS NULL AND c.customer_id = ANY(%s)
                    """,
                    [[u.pk for u in users]],
                )
                cur.execute(
                    f"""
                    UPDATE {CONVERSATION_TABLE} c SET last_message_id = m.id,
                        last_message_at = m.created_at, unread_staff_count = 1
                    FROM {MESSAGE_TABLE} m
                    WHERE m.conversation_id = c.id AND c.last_message_id IS NULL
                    """
                )
    rows = (
        Conversation.objects.filter(customer__username__startswith="bench-c-")
        .order_by("id")
        .values_list("id", "customer_id")[:total]
    )
    return list(rows)


def other_conversations() -> int:
    """Conversations that are not the load fixtures' (the REST one)."""
    from django_support_chat.models import Conversation

    return Conversation.objects.exclude(customer__username__startswith="bench-c-").count()


def tokens_for(user_ids: list[int]) -> dict[int, str]:
    from django.contrib.auth import get_user_model

    from django_support_chat.tokens import make_token

    users = get_user_model().objects.in_bulk(user_ids)
    return {pk: make_token(users[pk]) for pk in user_ids}


# -- inbox query counts ----------------------------------------------------------------------------


def inbox_queries(staff: Any, repeats: int = 5) -> dict[str, Any]:
    """Queries and time of the staff inbox list: the REST inbox and the HTML inbox page."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_support_chat.models import Conversation

    client = Client()
    client.force_login(staff)
    out: dict[str, Any] = {"conversations": Conversation.objects.count()}
    for name, url in (("api_inbox", "/api/chat/inbox/"), ("html_inbox", "/admin/chat/")):
        client.get(url)  # warm up (template loading, first-use imports)
        times, counts, status = [], [], 0
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as ctx:
                t = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
            counts.append(len(ctx.captured_queries))
            status = response.status_code
        out[name] = {
            "queries": max(counts),
            "ms_median": statistics.median(times),
            "status": status,
            "sql": [q["sql"][:160] for q in ctx.captured_queries],
        }
    return out


# -- REST ------------------------------------------------------------------------------------------


def rest_conversation() -> tuple[Any, Any, Any]:
    """The customer, staff member and conversation of the REST measurements."""
    from django.contrib.auth import get_user_model

    from django_support_chat.models import Conversation

    User = get_user_model()
    customer, _ = User.objects.get_or_create(username="bench-rest-customer")
    staff, _ = User.objects.get_or_create(username="bench-rest-staff", defaults={"is_staff": True})
    conversation = Conversation.objects.filter(customer=customer).first()
    if conversation is None:
        conversation = Conversation.objects.create(customer=customer)
    return customer, staff, conversation


def bulk_messages(
    conversation: Any, customer: Any, staff: Any, count: int, batch: int = 250_000, log: Any = print
) -> float:
    """Insert ``count`` messages into ``conversation`` server-side (generate_series), then
    update its denormalised fields and ANALYZE. Returns the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    done = 0
    with connection.cursor() as cur:
        while done < count:
            n = min(batch, count - done)
            cur.execute(
                f"""
                INSERT INTO {MESSAGE_TABLE}
                    (conversation_id, sender_id, sender_side, text, client_id, created_at)
                SELECT %s,
                       CASE WHEN g %% 2 = 0 THEN %s ELSE %s END,
                       CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'staff' END,
                       'History message number ' || g || ' with a little text in it',
                       gen_random_uuid(),
                       now() - make_interval(secs => %s - g)
                FROM generate_series(1, %s) AS g
                """,
                [conversation.pk, customer.pk, staff.pk, count - done + 10, n],
            )
            done += n
            if count > batch:
                log(f"    {done:,}/{count:,} rows ({time.perf_counter() - started:.0f} s)")
        cur.execute(
            f"""
            UPDATE {CONVERSATION_TABLE} SET last_message_id = (
                SELECT max(id) FROM {MESSAGE_TABLE} WHERE conversation_id = %s),
                last_message_at = now()
            WHERE id = %s
            """,
            [conversation.pk, conversation.pk],
        )
        cur.execute(f"ANALYZE {MESSAGE_TABLE}")
        cur.execute(f"ANALYZE {CONVERSATION_TABLE}")
    return time.perf_counter() - started


def message_stats(conversation: Any) -> dict[str, int]:
    from django_support_chat.models import Message

    return {
        "table_rows": Message.objects.count(),
        "conversation_rows": Message.objects.filter(conversation=conversation).count(),
    }


def oldest_ids(conversation: Any, skip: int) -> int:
    from django_support_chat.models import Message

    return (
        Message.objects.filter(conversation=conversation)
        .order_by("id")
        .values_list("id", flat=True)[skip]
    )


def session_cookie(user: Any) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Http:
    """Sequential keep-alive HTTP/1.1 requests with a session cookie and a CSRF token."""

    def __init__(self, port: int, session: str) -> None:
        from django.conf import settings

        self.port = port
        self.csrf = uuid.uuid4().hex  # any 32-char token works as the cookie secret
        self.headers = {
            "Cookie": f"{settings.SESSION_COOKIE_NAME}={session}; "
            f"{settings.CSRF_COOKIE_NAME}={self.csrf}",
            "X-CSRFToken": self.csrf,
            "Host": "127.0.0.1",
        }
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, float, Any]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        t = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        ms = (time.perf_counter() - t) * 1000
        return response.status, ms, payload

    def close(self) -> None:
        self.conn.close()


def drf_cursor(position: int) -> str:
    """DRF CursorPagination's cursor for "the page after id ``position``"."""
    return base64.b64encode(f"p={position}".encode()).decode()


def rest_latencies(
    port: int, customer: Any, staff: Any, conversation: Any, repeats: int, deep_position: int
) -> dict[str, Any]:
    """Latency (ms) of send, history pages and unread_count, ``repeats`` each, in turn."""
    import numpy as np

    cust = Http(port, session_cookie(customer))
    agent = Http(port, session_cookie(staff))
    base = f"/api/chat/conversations/{conversation.pk}/messages/"
    cursor = drf_cursor(deep_position)
    ops = {
        "send (POST messages/)": lambda: cust.request(
            "POST", base, {"text": "Hello from the REST benchmark", "client_id": str(uuid.uuid4())}
        ),
        "history, newest page": lambda: cust.request("GET", base),
        "history, deep page (keyset cursor)": lambda: cust.request(
            "GET", f"{base}?cursor={cursor}"
        ),
        "unread_count (customer)": lambda: cust.request("GET", "/api/chat/unread_count"),
        "unread_count (staff)": lambda: agent.request("GET", "/api/chat/unread_count"),
    }
    out: dict[str, Any] = {}
    for name, op in ops.items():
        for _ in range(3):
            op()  # warm up
        times, statuses = [], set()
        for _ in range(repeats):
            status, ms, _payload = op()
            times.append(ms)
            statuses.add(status)
        a = np.asarray(times)
        p50, p95, p99 = np.percentile(a, [50, 95, 99])
        out[name] = {
            "n": repeats,
            "p50": float(p50),
            "p95": float(p95),
            "p99": float(p99),
            "max": float(a.max()),
            "statuses": sorted(statuses),
        }
    cust.close()
    agent.close()
    return out
