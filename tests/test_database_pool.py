"""Database connections under ASGI: the example project (on PostgreSQL) and the published
production settings use Django's psycopg pool with CONN_MAX_AGE = 0, sized from the
environment; a real uvicorn worker under concurrent REST requests stays within its pool
and reuses its connections instead of opening one per request thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from django_support_chat import services
from django_support_chat.models import Conversation

from .factories import UserFactory

ROOT = Path(__file__).resolve().parents[1]
PG_URL = "postgres://chat:secret@db.internal:5432/chat"


def settings_of(module: str, env: dict[str, str]) -> dict[str, Any]:
    """``DATABASES["default"]`` of a settings module, imported in a fresh interpreter."""
    code = (
        "import importlib, json, sys; "
        f"m = importlib.import_module({module!r}); "
        "json.dump(m.DATABASES['default'], sys.stdout, default=str)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout)


PRODUCTION_ENV = {
    "SECRET_KEY": "x",
    "ALLOWED_HOSTS": "chat.example.com",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "STATIC_ROOT": "/tmp/static",
}


@pytest.mark.parametrize("module", ["example.settings", "deploy.settings_production"])
def test_postgresql_goes_through_the_pool(module):
    env = {**PRODUCTION_ENV, "DATABASE_URL": PG_URL}
    db = settings_of(module, env)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert db["CONN_MAX_AGE"] == 0
    assert db["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 10, "timeout": 5.0}
    sized = settings_of(
        module,
        {
            **env,
            "DATABASE_POOL_MIN_SIZE": "1",
            "DATABASE_POOL_MAX_SIZE": "25",
            "DATABASE_POOL_TIMEOUT": "2.5",
        },
    )
    assert sized["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 25, "timeout": 2.5}


def test_the_example_on_sqlite_has_no_pool():
    db = settings_of("example.settings", {"DATABASE_URL": "sqlite:////tmp/x.sqlite3"})
    assert db["CONN_MAX_AGE"] == 0
    assert "pool" not in db.get("OPTIONS", {})


def test_the_test_settings_pool_on_postgresql():
    """The suite's own PostgreSQL run goes through the pool too (tests/settings.py is the
    example's settings)."""
    db = django_settings.DATABASES["default"]
    assert db["CONN_MAX_AGE"] == 0
    if db["ENGINE"] == "django.db.backends.postgresql":
        assert db["OPTIONS"]["pool"]["max_size"] == 10


# -- a real worker ---------------------------------------------------------------------------

MAX_SIZE = 3
CLIENTS = 24
REQUESTS_EACH = 4


def backend_pids(application_name: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_under_concurrent_requests_stays_within_its_pool():
    assert connection.vendor == "postgresql", "this test needs PostgreSQL (DATABASE_URL)"
    from .e2e.conftest import start_server, stop_server
    from .servers import database_url

    customer = UserFactory(customer=True, username="pooled")
    conversation = Conversation.objects.create(customer=customer)
    for i in range(30):
        services.send_message(conversation, customer, f"message {i}", uuid.uuid4())
    client = Client()
    client.force_login(customer)
    cookie_name = django_settings.SESSION_COOKIE_NAME
    cookie = f"{cookie_name}={client.cookies[cookie_name].value}"

    # The server's connections are told apart by their application_name (a libpq option
    # that dj-database-url passes through from the URL).
    name = f"pooltest{os.getpid()}"
    process, base = start_server(
        {
            "DATABASE_URL": f"{database_url()}?application_name={name}",
            "DATABASE_POOL_MIN_SIZE": "1",
            "DATABASE_POOL_MAX_SIZE": str(MAX_SIZE),
            "DATABASE_POOL_TIMEOUT": "30",  # here every request must wait, not fail
        }
    )
    try:
        url = f"{base}/api/chat/conversations/{conversation.pk}/messages/"
        seen: set[int] = set()
        peak = 0
        statuses: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(CLIENTS)

        def client_thread() -> None:
            try:
                barrier.wait(timeout=30)
                for _ in range(REQUESTS_EACH):
                    request = urllib.request.Request(url, headers={"Cookie": cookie})
                    with urllib.request.urlopen(request, timeout=60) as response:
                        body = json.load(response)
                        statuses.append(response.status)
                        assert len(body["results"]) == 30
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client_thread) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            pids = backend_pids(name)
            seen |= pids
            peak = max(peak, len(pids))
            time.sleep(0.005)
        for thread in threads:
            thread.join()
        assert not errors, errors[0]
        assert statuses == [200] * (CLIENTS * REQUESTS_EACH)
        # Never more connections than the pool's max_size, whatever the number of request
        # threads; and the same few connections serve every request (CONN_MAX_AGE = 0
        # without a pool would open and close one per request).
        assert 1 <= peak <= MAX_SIZE, (peak, seen)
        assert len(seen) <= MAX_SIZE, seen
        # The pool keeps its connections open between requests.
        assert backend_pids(name) and backend_pids(name) <= seen
    finally:
        stop_server(process)
