"""End-to-end fixtures: the example project on a real ASGI server (uvicorn, in a separate
process, sharing the test database) and headless Chromium driven by Playwright.

Chromium is Debian's ``/usr/bin/chromium`` (``CHROMIUM`` overrides); a missing browser
fails the tests, it never skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from ..servers import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def start_server(
    extra_env: dict[str, str] | None = None, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """Start uvicorn serving the example project (on ``port``, else a free one); return
    (process, base URL)."""
    port = port or free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "example_project"), str(ROOT / "src")]),
        **(extra_env or {}),
    }
    env.pop("REDIS_URL", None) if "REDIS_URL" not in (extra_env or {}) else None
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server keeps Django's guard
    log = open(ROOT / f".e2e-server-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "example.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            os.environ.get("E2E_SERVER_LOG_LEVEL", "warning"),
            "--ws",
            "websockets-sansio",
        ],
        cwd=ROOT / "example_project",
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited early; see {log.name}")
        try:
            urllib.request.urlopen(base + "/", timeout=1)
            return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"uvicorn did not answer on {base} within 30 s; see {log.name}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def live_url(transactional_db: None) -> Iterator[str]:
    """Base URL of the example project on uvicorn, sharing this test's database."""
    process, base = start_server()
    yield base
    stop_server(process)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(path):
        pytest.fail(f"Chromium not found at {path}: install it (apt-get install -y chromium).")
    return path


@pytest.fixture(scope="session")
def _orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop in this thread; the ORM calls of these
    tests are still plain synchronous code, so Django's async-safety guard does not apply.
    Only while a browser runs (the browser tests have a pytest process of their own), never
    for the whole run, and never for the servers the tests start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="session")
def browser(chromium_path: str, _orm_beside_playwright: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser: Any, live_url: str) -> Iterator[Callable[..., Any]]:
    """``new_context(user=None, **playwright_options)`` -> a browser context, logged in as
    ``user`` through a real session cookie."""
    contexts = []

    def make(user: Any = None, **options: Any) -> Any:
        context = browser.new_context(base_url=live_url, **options)
        if user is not None:
            client = Client()
            client.force_login(user)
            cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
            context.add_cookies(
                [{"name": django_settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_url}]
            )
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def make_user(transactional_db: None) -> Callable[..., Any]:
    def make(username: str, **fields: Any) -> Any:
        fields.setdefault("first_name", username.title())
        return get_user_model().objects.create_user(username=username, password="pw", **fields)

    return make
