"""Test settings: the example project's, with fast hashing and a private cache."""

import os

from example.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SUPPORT_CHAT: dict = {}

# A file, not :memory:, so the ASGI server processes of the end-to-end and multi-worker
# tests share the test database with the test process.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # One file per test run, so two runs in one checkout never share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR.parent / f".test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20  # noqa: F405
