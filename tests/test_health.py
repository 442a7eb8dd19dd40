"""Health checks (docs/operations.md): ``chat/health/live``, ``chat/health/ready`` and the
chat's checks in a django-health-check endpoint.

Against real services: the readiness answers with the Redis channel layers and Redis
presence come from a redis-server this test owns and kills (``RedisServer`` of
tests/realtime/test_redis_outage.py), and the database check is pointed at a PostgreSQL
address where nothing listens.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.checks import run_checks
from django.db import connections
from django.test import AsyncClient, override_settings

from django_support_chat import health

from .realtime.test_redis_outage import RedisServer, redis_server  # noqa: F401  (fixture)
from .servers import free_port

LIVE = "/chat/health/live"
READY = "/chat/health/ready"
TIMEOUT = 1  # HEALTH_TIMEOUT in the outage tests, seconds
SLACK = 1.5  # what an answer may take beyond the timeout on a slow CI machine

PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
CORE = "channels_redis.core.RedisChannelLayer"


def redis_settings(url: str, backend: str = PUBSUB) -> override_settings:
    """The chat on Redis: channel layer and (through it) presence."""
    return override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": {"hosts": [url]}}},
        SUPPORT_CHAT={"HEALTH_TIMEOUT": TIMEOUT},
    )


def assert_no_cache(response: Any) -> None:
    assert "no-store" in response["Cache-Control"]


async def ready(client: AsyncClient) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    response = await client.get(READY)
    elapsed = time.monotonic() - start
    assert response["Content-Type"] == "application/json"
    assert_no_cache(response)
    return response.status_code, json.loads(response.content), elapsed


# Liveness ----------------------------------------------------------------------------


async def test_live_answers_without_database_or_redis():
    # No django_db mark: pytest-django fails any database access. And Redis points at a
    # port where nothing listens.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with redis_settings(dead):
        response = await AsyncClient().get(LIVE)
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert_no_cache(response)


async def test_live_and_ready_refuse_post():
    client = AsyncClient()
    assert (await client.post(LIVE)).status_code == 405
    assert (await client.post(READY)).status_code == 405


# Readiness ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_ready_green_with_the_in_memory_layer():
    status, body, _ = await ready(AsyncClient())
    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "channel_layer", "presence"}
    for result in body["checks"].values():
        assert result["ok"] is True
        assert isinstance(result["ms"], float) and result["ms"] >= 0
        assert "error" not in result


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", [PUBSUB, CORE], ids=["pubsub", "core"])
async def test_ready_goes_red_while_redis_is_down_and_green_after(
    redis_server: RedisServer,  # noqa: F811
    backend: str,
):
    client = AsyncClient()
    with redis_settings(redis_server.url, backend):
        status, body, _ = await ready(client)
        assert status == 200, body
        assert body["status"] == "ok"
        # The probe's channel does not outlive it (the pub/sub layer unsubscribes).
        assert redis.Redis.from_url(redis_server.url).pubsub_channels("*health*") == []

        redis_server.kill()
        status, body, elapsed = await ready(client)
        assert status == 503, body
        assert body["status"] == "error"
        checks = body["checks"]
        assert checks["database"]["ok"] is True
        for name in ("channel_layer", "presence"):
            assert checks[name]["ok"] is False
            assert checks[name]["error"]
        # Checks run at once, each bounded: the answer takes about one timeout at most.
        assert elapsed < TIMEOUT + SLACK, elapsed
        text = json.dumps(body)
        assert str(redis_server.port) not in text and "redis://" not in text
        assert "Traceback" not in text

        # Still red, and still prompt, on the next probe (nothing hangs behind the first).
        status, body, elapsed = await ready(client)
        assert status == 503 and elapsed < TIMEOUT + SLACK

        redis_server.start()
        # redis-py reconnects on the next command: the first probe after the restart
        # should be green; allow a few in case the restart races the first connect.
        deadline = time.monotonic() + 10
        while True:
            status, body, _ = await ready(client)
            if status == 200 or time.monotonic() > deadline:
                break
        assert status == 200, body
        assert all(result["ok"] for result in body["checks"].values())


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A Redis URL whose server accepts connections and never answers (a hung Redis, a
    black-holed network): only the timeout can end a check against it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # never accepted: the kernel completes the handshakes anyway
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", [PUBSUB, CORE], ids=["pubsub", "core"])
async def test_ready_answers_within_the_timeout_when_redis_hangs(silent_server: str, backend):
    with redis_settings(silent_server, backend):
        status, body, elapsed = await ready(AsyncClient())
    assert status == 503, body
    assert elapsed < TIMEOUT + SLACK, elapsed
    assert body["checks"]["database"]["ok"] is True
    for name in ("channel_layer", "presence"):
        assert body["checks"][name] == {
            "ok": False,
            "ms": body["checks"][name]["ms"],
            "error": f"timed out after {TIMEOUT}s",
        }
        assert TIMEOUT * 1000 <= body["checks"][name]["ms"] < (TIMEOUT + SLACK) * 1000


# The database check ------------------------------------------------------------------


@pytest.fixture
def unreachable_db() -> Iterator[str]:
    """A database alias for a PostgreSQL server that is not there (a closed port), with a
    password that must not show up anywhere in a result."""
    alias = "health_unreachable"
    configured = connections.configure_settings(
        {
            "default": settings.DATABASES["default"],
            alias: {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": str(free_port()),
                "NAME": "nothing_here",
                "USER": "health_user",
                "PASSWORD": "s3cret-health-password",
            },
        }
    )
    connections.settings[alias] = configured[alias]
    yield alias
    del connections.settings[alias]


async def test_database_check_fails_for_an_unreachable_server(
    unreachable_db: str, django_db_setup: None, django_db_blocker: Any
):
    # Not a django_db test: its test case would refuse any alias it was not told about
    # (and would try to flush this one afterwards).
    start = time.monotonic()
    with django_db_blocker.unblock():
        result = await health.check_database(unreachable_db)
        default = await health.check_database()
    assert time.monotonic() - start < health.timeout() + SLACK
    assert result.ok is False
    assert result.error == "OperationalError"
    text = json.dumps(result.as_dict())
    assert "s3cret" not in text and "health_user" not in text and "127.0.0.1" not in text
    assert default.ok is True, default


# Settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, "2", True, None])
def test_a_bad_health_timeout_is_reported(value: Any):
    with override_settings(SUPPORT_CHAT={"HEALTH_TIMEOUT": value}):
        ids = [message.id for message in run_checks()]
    assert "support_chat.E004" in ids


def test_a_fractional_health_timeout_is_accepted():
    with override_settings(SUPPORT_CHAT={"HEALTH_TIMEOUT": 0.5}):
        assert "support_chat.E004" not in [message.id for message in run_checks()]
        assert health.timeout() == 0.5


# django-health-check -----------------------------------------------------------------


def health_check_host() -> override_settings:
    """A host that installs django-health-check and lists the chat's checks in its
    endpoint (tests/urls_health_check.py)."""
    return override_settings(
        INSTALLED_APPS=[*settings.INSTALLED_APPS, "health_check"],
        ROOT_URLCONF="tests.urls_health_check",
    )


async def health_check_json(client: AsyncClient) -> tuple[int, dict[str, str]]:
    response = await client.get("/ht/", headers={"Accept": "application/json"})
    return response.status_code, json.loads(response.content)


CHAT_CHECKS = {
    "ChatDatabase(alias='default')",
    "ChatChannelLayer(alias='default')",
    "ChatPresence()",
}


@pytest.mark.django_db(transaction=True)
async def test_django_health_check_lists_the_chats_checks():
    with health_check_host():
        status, body = await health_check_json(AsyncClient())
        # Its HTML page (the template of the installed app) lists them too.
        page = await AsyncClient().get("/ht/", headers={"Accept": "text/html"})
    assert status == 200, body
    assert set(body) >= CHAT_CHECKS
    assert all(body[name] == "OK" for name in CHAT_CHECKS)
    assert page.status_code == 200
    assert "ChatChannelLayer" in page.content.decode() and "ChatPresence" in page.content.decode()


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_django_health_check_fails_while_redis_is_down(
    redis_server: RedisServer,  # noqa: F811
):
    client = AsyncClient()
    with health_check_host(), redis_settings(redis_server.url):
        status, body = await health_check_json(client)
        assert status == 200, body

        redis_server.kill()
        start = time.monotonic()
        status, body = await health_check_json(client)
        assert time.monotonic() - start < TIMEOUT + SLACK
        assert status == 500, body  # django-health-check's own status for a failure
        assert body["ChatDatabase(alias='default')"] == "OK"
        assert body["ChatChannelLayer(alias='default')"].startswith("Unavailable: ")
        assert body["ChatPresence()"].startswith("Unavailable: ")
        assert str(redis_server.port) not in json.dumps(body)

        redis_server.start()
        deadline = time.monotonic() + 10
        while (status := (await health_check_json(client))[0]) != 200:
            if time.monotonic() > deadline:
                break
        assert status == 200
