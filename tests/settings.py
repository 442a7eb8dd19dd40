"""Test settings: the example project's, with fast hashing and a private cache."""

from example.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SUPPORT_CHAT: dict = {}
