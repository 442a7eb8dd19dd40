"""Helpers shared by the tests that start real ASGI servers (tests/e2e, tests/foreign_host)."""

from __future__ import annotations

import socket

from django.db import connection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    """The URL of the test database the test process is using."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{host}:{port}/{s['NAME']}"


def file_email_settings(directory: str) -> dict[str, object]:
    """Settings that make a worker process write its emails as files to ``directory`` (a
    process of its own cannot share the test's locmem outbox); for ``globals().update``."""
    import django

    backend = "django.core.mail.backends.filebased.EmailBackend"
    if django.VERSION >= (6, 1):
        return {"MAILERS": {"default": {"BACKEND": backend, "OPTIONS": {"file_path": directory}}}}
    return {"EMAIL_BACKEND": backend, "EMAIL_FILE_PATH": directory}
