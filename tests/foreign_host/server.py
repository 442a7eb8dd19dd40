"""The foreign host on a real uvicorn, the way a production ASGI site runs: DEBUG off,
collected static files served by whitenoise, the Redis channel layer (``REDIS_URL_TEST``,
which ``scripts/test.sh`` sets; a missing Redis fails the test). The server shares the test
process's database (the SQLite test file or the PostgreSQL test database)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..servers import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL_ENV = "REDIS_URL_TEST"
# What must never be in the server's log (a 500 answer, an exception of any kind).
LOG_ERRORS = ("500", "Traceback", "Internal Server Error")


def redis_url() -> str:
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        pytest.fail(
            f"{REDIS_URL_ENV} is not set: the foreign host's server tests need a running "
            "redis-server (bash scripts/test.sh starts one)."
        )
    return url


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    @property
    def ws_base(self) -> str:
        return "ws" + self.base.removeprefix("http")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log(self, start: int = 0) -> str:
        with self.log_path.open("rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start(static_root: Path) -> Server:
    """Start uvicorn serving ``tests.foreign_host.asgi:application``; wait until "/"
    answers 200."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.foreign_host.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "0",
        "STATIC_ROOT": str(static_root),
        "REDIS_URL": redis_url(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set in the browser tests' process only
    log_path = Path(tempfile.gettempdir()) / f"foreign-host-uvicorn-{os.getpid()}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.foreign_host.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--ws",
                "websockets-sansio",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited early (code {process.returncode}):\n{server.log()}")
        try:
            with urllib.request.urlopen(server.base + "/", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    pytest.fail(f"uvicorn did not answer on {server.base} within 30 s:\n{server.log()}")


def assert_clean_log(log_path: Path, start: int = 0) -> None:
    with log_path.open("rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    found = [marker for marker in LOG_ERRORS if marker in text]
    assert not found, f"the server log ({log_path}) has {found}:\n{text[-6000:]}"
