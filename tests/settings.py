"""Test settings: the example project's, with fast hashing and a private cache."""

import os

from example.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SUPPORT_CHAT: dict = {}
# The chat's emails take their absolute links from the current Site (example.com) when
# SUPPORT_CHAT["EMAIL_BASE_URL"] is unset: tests that replace SUPPORT_CHAT keep them.
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.sites"]  # noqa: F405
SITE_ID = 1

# A file, not :memory:, so the ASGI server processes of the end-to-end and multi-worker
# tests share the test database with the test process.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # One file per test run, so two runs in one checkout never share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR.parent / f".test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20  # noqa: F405
