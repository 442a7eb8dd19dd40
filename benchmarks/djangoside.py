"""Everything the benchmark does through Django in its own process: migrate, fixtures,
WebSocket tokens, session cookies of the REST clients, and the "stored once" counts.

Call ``setup()`` once, before any event loop runs: the ORM is used synchronously here.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from infra import BENCH_DIR, ROOT

MESSAGE_TABLE = "support_chat_message"
CONVERSATION_TABLE = "support_chat_conversation"


def site_env(database_url: str, redis_url: str, static_root: str) -> dict[str, str]:
    """The environment deploy/settings_production.py reads, pointed at loopback."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "SECRET_KEY": "bench-only-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STATIC_ROOT": static_root,
    }


def setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    for p in (str(BENCH_DIR), str(ROOT / "example_project"), str(ROOT / "src"), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def settings_summary() -> dict[str, Any]:
    """What the benchmarked site runs with: the database options, and the differences from
    production that bench_settings declares."""
    from django.conf import settings

    db = dict(settings.DATABASES["default"])
    return {
        "CONN_MAX_AGE": db.get("CONN_MAX_AGE"),
        "CONN_HEALTH_CHECKS": db.get("CONN_HEALTH_CHECKS"),
        "OPTIONS": {k: v for k, v in (db.get("OPTIONS") or {}).items() if k != "password"},
        "CHANNEL_LAYERS": settings.CHANNEL_LAYERS["default"]["BACKEND"],
        "SEND_QUEUE_LIMIT": _chat_setting("SEND_QUEUE_LIMIT"),
        "SEND_RETRY_AFTER": _chat_setting("SEND_RETRY_AFTER"),
        "SEND_MAX_LAG": _chat_setting("SEND_MAX_LAG"),
        "WS_DATABASE_THREADS": _chat_setting("WS_DATABASE_THREADS"),
        "differences": getattr(settings, "BENCH_DIFFERENCES", {}),
    }


def _chat_setting(name: str) -> Any:
    from django_support_chat.conf import chat_settings

    try:
        return getattr(chat_settings, name)
    except AttributeError:
        return "(no such setting yet)"


def close_db() -> None:
    from django.db import connections

    connections.close_all()


def drop_email_backlog() -> int:
    """Delete the pending email rows (and their queued tasks) left by a phase, before the
    next one: the REST phase opens an email window in hundreds of conversations at once,
    and their rows (one per staff member) would all fall due during the WebSocket arms,
    loading the machine with one phase's backlog while the next is measured. Returns how
    many rows went."""
    from django_support_chat.models import EmailNotification

    count, _ = EmailNotification.objects.filter(status="pending").delete()
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        pass
    else:
        DBTaskResult.objects.filter(status="READY").delete()
    close_db()
    return count


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
                        (conversation_id, sender_id, sender_side, text, client_id, created_at,
                         seq{extra_columns()})
                    SELECT c.id, c.customer_id, 'user', 'Hello, I need help with my order',
                           gen_random_uuid(), now(), 1{extra_values()}
                    FROM {CONVERSATION_TABLE} c
                    WHERE c.last_message_id IS NULL AND c.customer_id = ANY(%s)
                    """,
                    [[u.pk for u in users]],
                )
                cur.execute(
                    f"""
                    UPDATE {CONVERSATION_TABLE} c SET last_message_id = m.id,
                        last_message_at = m.created_at, unread_staff_count = 1, last_seq = 1
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


# -- REST clients -----------------------------------------------------------------------------------


def rest_clients(count: int, history: int) -> list[dict[str, Any]]:
    """``count`` customers (``bench-r-<i>``), each with a conversation holding ``history``
    messages (alternating customer / staff, distinct texts with a link), a session cookie
    and a CSRF token; and per customer a second conversation (customer ``bench-rf-<i>``)
    that only the floor's POSTs write to. Returns dicts with ``conversation``,
    ``floor_conversation``, ``cookie`` and ``csrf``."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection, transaction

    from django_support_chat.models import Conversation

    User = get_user_model()
    staff, _ = User.objects.get_or_create(username="bench-rest-staff", defaults={"is_staff": True})
    out = []
    with transaction.atomic():
        have = {
            u.username: u
            for u in User.objects.filter(username__startswith="bench-r")
            if u.username.startswith(("bench-r-", "bench-rf-"))
        }
        new = [
            User(username=name, password="!")
            for i in range(count)
            for name in (f"bench-r-{i}", f"bench-rf-{i}")
            if name not in have
        ]
        for u in User.objects.bulk_create(new, batch_size=2000):
            have[u.username] = u
        convs = {c.customer_id: c for c in Conversation.objects.filter(customer__in=have.values())}
        missing = [Conversation(customer=u) for u in have.values() if u.pk not in convs]
        for c in Conversation.objects.bulk_create(missing, batch_size=2000):
            convs[c.customer_id] = c
        plugin_ids = [convs[have[f"bench-r-{i}"].pk].pk for i in range(count)]
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT DISTINCT conversation_id FROM {MESSAGE_TABLE}"
                " WHERE conversation_id = ANY(%s)",
                [plugin_ids],
            )
            seeded = {row[0] for row in cur.fetchall()}
            todo = [pk for pk in plugin_ids if pk not in seeded]
            if todo and history:
                cur.execute(
                    f"""
                    INSERT INTO {MESSAGE_TABLE}
                        (conversation_id, sender_id, sender_side, text, client_id, created_at,
                         seq{extra_columns()})
                    SELECT c.id,
                           CASE WHEN g %% 2 = 1 THEN c.customer_id ELSE %s END,
                           CASE WHEN g %% 2 = 1 THEN 'user' ELSE 'staff' END,
                           'Message ' || g || ' of conversation ' || c.id
                               || ': see https://example.com/orders/' || c.id || '/' || g
                               || ' for the details of your order.',
                           gen_random_uuid(),
                           now() - make_interval(secs => %s - g),
                           g{extra_values()}
                    FROM {CONVERSATION_TABLE} c, generate_series(1, %s) AS g
                    WHERE c.id = ANY(%s)
                    """,
                    [staff.pk, history + 1, history, todo],
                )
                cur.execute(
                    f"""
                    UPDATE {CONVERSATION_TABLE} c SET last_message_id = m.id,
                        last_message_at = m.created_at, last_seq = m.seq
                    FROM (SELECT DISTINCT ON (conversation_id) conversation_id, id, seq,
                                 created_at
                          FROM {MESSAGE_TABLE} WHERE conversation_id = ANY(%s)
                          ORDER BY conversation_id, id DESC) m
                    WHERE c.id = m.conversation_id
                    """,
                    [todo],
                )
        fill_derived_columns()
        for i in range(count):
            user = have[f"bench-r-{i}"]
            session = SessionStore()
            session["_auth_user_id"] = str(user.pk)
            session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
            session["_auth_user_hash"] = user.get_session_auth_hash()
            session.create()
            csrf = uuid.uuid4().hex  # any 32-character secret is a valid CSRF cookie
            out.append(
                {
                    "conversation": convs[user.pk].pk,
                    "floor_conversation": convs[have[f"bench-rf-{i}"].pk].pk,
                    "cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
                    f"{settings.CSRF_COOKIE_NAME}={csrf}",
                    "csrf": csrf,
                }
            )
    with connection.cursor() as cur:
        cur.execute(f"ANALYZE {MESSAGE_TABLE}")
        cur.execute(f"ANALYZE {CONVERSATION_TABLE}")
    return out


def _html_field() -> str | None:
    from django_support_chat.models import Message

    names = [f.name for f in Message._meta.concrete_fields if "html" in f.name]
    return names[0] if names else None


def extra_columns() -> str:
    """Columns beyond the ones every version of the model has, for the raw INSERTs: the
    stored HTML when the model has it (empty here, filled by fill_derived_columns)."""
    field = _html_field()
    return f", {field}" if field else ""


def extra_values() -> str:
    return ", ''" if _html_field() else ""


def fill_derived_columns() -> int:
    """Fill columns the server derives at write time in rows the fixtures inserted with
    SQL: today none; a stored HTML rendering of the text (issue #14: render at write
    time) when the Message model has one. Returns the rows filled."""
    from django_support_chat.models import Message

    field = _html_field()
    if field is None:
        return 0
    from django_support_chat import text as text_mod

    render = getattr(text_mod, "render_text", None)
    if render is None:
        return 0
    rows = list(Message.objects.filter(**{f"{field}__in": ["", None]}).only("id", "text"))
    for m in rows:
        setattr(m, field, render(m.text))
    Message.objects.bulk_update(rows, [field], batch_size=2000)
    return len(rows)


def fill_all_derived() -> None:
    """fill_derived_columns over the whole table, in its own transaction."""
    from django.db import transaction

    with transaction.atomic():
        fill_derived_columns()


def stored_once(client_ids: list[str]) -> dict[str, int]:
    """How many of ``client_ids`` the database holds once, not at all, or more than once."""
    from django.db import connection

    if not client_ids:
        return {"messages": 0, "once": 0, "missing": 0, "more_than_once": 0}
    counts: dict[str, int] = {}
    with connection.cursor() as cur:
        for k in range(0, len(client_ids), 20_000):
            chunk = client_ids[k : k + 20_000]
            cur.execute(
                f"SELECT client_id::text, count(*) FROM {MESSAGE_TABLE}"
                " WHERE client_id = ANY(%s::uuid[]) GROUP BY 1",
                [chunk],
            )
            counts.update(dict(cur.fetchall()))
    close_db()
    unique = set(client_ids)
    return {
        "messages": len(unique),
        "once": sum(1 for c in unique if counts.get(c) == 1),
        "missing": sum(1 for c in unique if c not in counts),
        "more_than_once": sum(1 for c in unique if counts.get(c, 0) > 1),
    }
