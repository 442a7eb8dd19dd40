"""The published production topology, run as published: nginx (Debian's package) in front of
two uvicorn workers of the example project on PostgreSQL and Redis, configured from the
files under deploy/:

- deploy/nginx/support-chat.conf, with its ``${PLACEHOLDERS}`` substituted (ports, paths)
  the way its header says (envsubst-style), and nothing else changed;
- deploy/systemd/support-chat@.service: each worker runs its ExecStart line (``%i`` is the
  port), with uvicorn from the test's venv and the example project's ASGI application;
- deploy/settings_production.py on top of the example settings (tests/e2e/nginx_settings.py):
  DEBUG=False, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS, the Redis channel layer and cache,
  STATIC_ROOT filled by ``collectstatic`` and served by nginx.

A customer (the widget) and a staff member (the inbox) in two browser contexts talk only to
nginx's port: both directions arrive live, the POSTs (REST send, inbox reply) pass the CSRF
check through the proxy, both workers serve requests, and /static/ never reaches uvicorn.

No TLS here: the browsers use http://127.0.0.1, where a browser drops cookies marked
``Secure``. So the workers run with ``DJANGO_SECURE_COOKIES=0``, the one switch in
deploy/settings_production.py that turns SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE off;
test_cookies_are_secure_by_default checks that without it both cookies carry ``Secure``.

nginx runs as the current user from a generated main configuration (pid, logs and temp
paths in the test's tmp directory) that includes the rendered site; a missing nginx fails
the test (scripts/test.sh installs it and exports NGINX).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from django_support_chat.models import Message

from ..servers import database_url, free_port
from .conftest import ROOT
from .inbox_helpers import open_inbox, row, wait_chat_connected, watch_errors

# The autouse fixture: only the workers publish (this process runs Playwright's loop).
from .test_redis_outage_browser import (  # noqa: F401
    _no_events_from_the_test_process,
    logged_in_context,
)
from .widget_helpers import (
    customer_conversation,
    open_widget,
    send_from_widget,
    wait_connected,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

DEPLOY = ROOT / "deploy"
SITE_CONF = DEPLOY / "nginx" / "support-chat.conf"
WORKER_UNIT = DEPLOY / "systemd" / "support-chat@.service"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
LIVE = 10_000  # ms for a message to show up on the other side

WIDGET_TEXTS = ".scw-item[data-id] .scw-text"
INBOX_TEXTS = "#sc-history .sc-msg .sc-bubble"


def render(template: Path, values: dict[str, str]) -> str:
    """``envsubst '${A} ${B}'``: replace the named placeholders, leave nginx's $variables.
    Every placeholder outside comments must have a value."""
    text = template.read_text()
    missing = {
        name
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for name in PLACEHOLDER.findall(line)
        if name not in values
    }
    assert not missing, f"{template.name}: no value for {sorted(missing)}"
    return PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)


def worker_command(port: int) -> list[str]:
    """The unit's ExecStart with ``%i`` = port, run by this venv's Python, serving the
    example project (the unit's ``mysite.asgi:application``)."""
    exec_start = next(
        line.split("=", 1)[1]
        for line in WORKER_UNIT.read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    argv = shlex.split(exec_start.replace("%i", str(port)))
    assert argv[0].endswith("/uvicorn") and argv[1] == "mysite.asgi:application", argv
    return [sys.executable, "-m", "uvicorn", "example.asgi:application", *argv[2:]]


def wait_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited early:\n{log.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on {url} within 30 s; see {log}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Topology:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.worker_ports = [free_port(), free_port()]
        self.static_root = tmp / "static"
        self.processes: list[subprocess.Popen] = []

    def worker_log(self, port: int) -> str:
        return (self.tmp / f"uvicorn-{port}.log").read_text(errors="replace")

    def socket_holders(self, path: str) -> list[int]:
        """The workers whose log has a WebSocket handshake on ``path``, each once per line."""
        return [
            port for port in self.worker_ports for _ in socket_lines(self.worker_log(port), path)
        ]

    def new_socket_holder(self, path: str, before: list[int]) -> int:
        """The worker that logged the next handshake on ``path`` after ``before``."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = self.socket_holders(path)
            for port in self.worker_ports:
                if now.count(port) > before.count(port):
                    return port
            time.sleep(0.05)
        raise AssertionError(f"no new WebSocket {path} in the worker logs")

    def env(self) -> dict[str, str]:
        redis_url = os.environ.get("REDIS_URL_TEST")
        if not redis_url:
            pytest.fail("REDIS_URL_TEST is not set: run through scripts/test.sh")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e.nginx_settings",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), str(ROOT / "example_project"), str(ROOT / "src")]
            ),
            "DEBUG": "0",
            # The test's own: the sessions it creates for the browsers must be valid there.
            "SECRET_KEY": django_settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": self.base,
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "STATIC_ROOT": str(self.static_root),
            # Plain HTTP in the test (see the module docstring).
            "DJANGO_SECURE_COOKIES": "0",
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        return env

    def start(self) -> None:
        env = self.env()
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT / "example_project",
            env=env,
            check=True,
        )
        for port in self.worker_ports:
            self.start_worker(port, env)
        self.start_nginx()

    def start_worker(self, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
        """One worker, answering when this returns. Its log is appended to: a worker started
        again (tests/e2e/test_graceful_deploy.py) continues the same file."""
        log = self.tmp / f"uvicorn-{port}.log"
        process = subprocess.Popen(
            worker_command(port),
            cwd=ROOT / "example_project",
            env=env or self.env(),
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        wait_answering(f"http://127.0.0.1:{port}/chat/health/live", process, log)
        return process

    def start_nginx(self) -> None:
        binary = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(binary, os.X_OK):
            pytest.fail(f"nginx not found ({binary}): apt-get install -y nginx")
        prefix = self.tmp / "nginx"
        prefix.mkdir()
        site = prefix / "support-chat.conf"
        site.write_text(
            render(
                SITE_CONF,
                {
                    "LISTEN": f"127.0.0.1:{self.port}",
                    "SERVER_NAME": "127.0.0.1",
                    "UPSTREAM_1": f"127.0.0.1:{self.worker_ports[0]}",
                    "UPSTREAM_2": f"127.0.0.1:{self.worker_ports[1]}",
                    "STATIC_ROOT": str(self.static_root),
                },
            )
        )
        # As root, nginx's workers would switch to "nobody", who cannot read pytest's tmp.
        user = "user root;" if os.geteuid() == 0 else ""
        temp = " ".join(
            f"{kind}_temp_path {prefix / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"""{user}
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix / "access.log"};
    {temp}
    include {site};
}}
"""
        )
        log = prefix / "stderr.log"
        process = subprocess.Popen(
            [
                binary,
                "-e",
                str(prefix / "error.log"),
                "-c",
                str(conf),
                "-p",
                str(prefix),
                "-g",
                "daemon off;",
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        wait_answering(self.base + "/chat/health/live", process, log)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    assert connection.vendor == "postgresql", "the topology test needs PostgreSQL (DATABASE_URL)"
    topology = Topology(tmp_path)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def socket_lines(log: str, path: str) -> list[str]:
    return [line for line in log.splitlines() if f'"WebSocket {path}' in line]


def test_chat_both_ways_live_through_nginx(browser, topology: Topology):
    User = get_user_model()
    alice = User.objects.create_user("alice", password="pw", first_name="Alice")
    staff = User.objects.create_user("sam", password="pw", first_name="Sam", is_staff=True)
    base = topology.base
    sent: list[str] = []

    customer_context = logged_in_context(browser, base, alice)
    staff_context = logged_in_context(browser, base, staff)
    try:
        widget, inbox = customer_context.new_page(), staff_context.new_page()
        widget_errors, inbox_errors = watch_errors(widget), watch_errors(inbox)

        # Static files: from nginx's STATIC_ROOT (collectstatic), not from a worker.
        css = widget.request.get("/static/support_chat/widget/panel.css")
        assert css.ok, css.status
        assert css.headers["server"].startswith("nginx"), css.headers
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers["cache-control"] == "max-age=604800"  # the site's `expires 7d`

        open_inbox(inbox)  # the staff lobby socket, through nginx
        widget.goto("/")
        open_widget(widget)
        wait_connected(widget)  # the customer's socket, through nginx

        # Customer -> staff over the WebSocket: the row shows it live in the inbox list.
        send_from_widget(widget, "Hello through nginx")
        sent.append("Hello through nginx")
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent, timeout=LIVE)
        conversation = customer_conversation(alice)
        expect(row(inbox, conversation.pk).locator(".sc-row-text")).to_have_text(
            sent[-1], timeout=LIVE
        )

        # Staff opens it; the customer's next message comes over REST (a CSRF-checked POST)
        # and appears in the open conversation live.
        customer_path = f"/ws/chat/user/{conversation.pk}/"
        staff_path = f"/ws/chat/admin/{conversation.pk}/"
        (customer_worker,) = topology.socket_holders(customer_path)
        # The staff's conversation socket on the *other* worker, so that every message below
        # crosses workers through Redis. nginx's round robin takes turns per request: when a
        # load lands on the customer's worker, requests of ours (one more each time) shift
        # the turns before the next reload.
        staff_worker = 0
        for attempt in range(6):
            before = topology.socket_holders(staff_path)
            if attempt == 0:
                row(inbox, conversation.pk).locator(".sc-row-link").click()
            else:
                for _ in range(attempt):
                    urllib.request.urlopen(base + "/chat/health/live", timeout=5)
                inbox.reload()
            wait_chat_connected(inbox)
            staff_worker = topology.new_socket_holder(staff_path, before)
            if staff_worker != customer_worker:
                break
        assert staff_worker != customer_worker, "the staff socket never reached the other worker"
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=LIVE)
        token = next(c["value"] for c in customer_context.cookies() if c["name"] == "csrftoken")
        response = widget.request.post(
            f"/api/chat/conversations/{conversation.pk}/messages/",
            data=json.dumps({"text": "And once more over REST", "client_id": str(uuid.uuid4())}),
            headers={"Content-Type": "application/json", "X-CSRFToken": token},
        )
        assert response.status == 201, (response.status, response.text())
        sent.append("And once more over REST")
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=LIVE)
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent, timeout=LIVE)

        # Staff -> customer: the inbox's reply form (an htmx POST with the CSRF token).
        inbox.locator("#sc-reply").fill("Hi Alice, Sam here")
        inbox.locator("#sc-reply").press("Enter")
        sent.append("Hi Alice, Sam here")
        expect(inbox.locator("#sc-reply")).to_have_value("", timeout=LIVE)
        expect(widget.locator(WIDGET_TEXTS)).to_have_text(sent, timeout=LIVE)
        expect(inbox.locator(INBOX_TEXTS)).to_have_text(sent, timeout=LIVE)

        assert widget_errors == [] and inbox_errors == [], widget_errors + inbox_errors
        # The cookies the workers set (DJANGO_SECURE_COOKIES=0 here, see above).
        csrf = next(c for c in customer_context.cookies() if c["name"] == "csrftoken")
        assert csrf["secure"] is False
    finally:
        customer_context.close()
        staff_context.close()

    texts = list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("text", flat=True)
    )
    assert texts == sent

    logs = {port: topology.worker_log(port) for port in topology.worker_ports}
    for port, log in logs.items():
        served = re.findall(r'(\S+) - "(?:GET|POST) (/\S*) HTTP/1\.1" \d{3}', log)
        # Both workers took requests from nginx (round robin over the upstream), other than
        # the health probe the test sent to each directly while starting it.
        assert len(served) > 1 and served[0][1] == "/chat/health/live", (port, served)
        # --proxy-headers: behind nginx the client is X-Forwarded-For's (no port, ":0"),
        # not nginx's own connection.
        assert {client for client, _ in served[1:]} == {"127.0.0.1:0"}, (port, served)
        # /static/ was answered by nginx alone.
        assert not [path for _, path in served if path.startswith("/static/")], (port, served)
        assert not re.search(r'" 5\d\d\b|Traceback', log), log
    # The customer's one socket, accepted by one worker; the staff's last one by the other.
    assert topology.socket_holders(customer_path) == [customer_worker]
    assert "[accepted]" in socket_lines(logs[customer_worker], customer_path)[0]
    assert "[accepted]" in socket_lines(logs[staff_worker], staff_path)[-1]


def test_cookies_are_secure_by_default(monkeypatch, settings, django_user_model):
    """deploy/settings_production.py without DJANGO_SECURE_COOKIES=0: the session and CSRF
    cookies a login sets carry ``Secure`` (the browser sends them over HTTPS only)."""
    for name, value in {
        "SECRET_KEY": "x",
        "ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": database_url(),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "STATIC_ROOT": "/tmp/static",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DJANGO_SECURE_COOKIES", raising=False)
    production = importlib.reload(importlib.import_module("deploy.settings_production"))
    assert production.DEBUG is False
    settings.SESSION_COOKIE_SECURE = production.SESSION_COOKIE_SECURE
    settings.CSRF_COOKIE_SECURE = production.CSRF_COOKIE_SECURE
    settings.SECURE_PROXY_SSL_HEADER = production.SECURE_PROXY_SSL_HEADER

    django_user_model.objects.create_user("alice", password="pw")
    client = Client(enforce_csrf_checks=True)
    # What nginx passes on for an HTTPS browser: its Host and X-Forwarded-Proto.
    https = {"Host": "testserver", "X-Forwarded-Proto": "https"}
    client.get("/login/", headers=https)
    response = client.post(
        "/login/",
        {
            "username": "alice",
            "password": "pw",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
        headers={**https, "Referer": "https://testserver/login/"},
    )
    assert response.status_code == 302, response.status_code
    assert response.cookies[django_settings.SESSION_COOKIE_NAME]["secure"] is True
    assert client.cookies["csrftoken"]["secure"] is True
