"""Settings of the foreign host: a site that was not written with the chat in mind.

Its own traits: an email-login user model (``accounts.Member``), Bootstrap 5 from pip and
no Font Awesome, its own drf-spectacular API, Django admin at ``/backoffice/``, hashed
static files served by whitenoise, ``DATABASE_URL`` or a SQLite file, Redis when
``REDIS_URL`` is set. The lines marked ``support-chat: step N`` are the README's steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
REPO_ROOT = BASE_DIR.parents[1]

SECRET_KEY = os.environ.get("SECRET_KEY", "foreign-host-tests-only-not-secret")
DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bootstrap",  # django-bootstrap-static
    "rest_framework",
    "drf_spectacular",
    "tests.foreign_host.accounts",
    "django_htmx",  # support-chat: step 1
    "channels",  # support-chat: step 1
    "django_support_chat",  # support-chat: step 1
    "django_tasks_db",  # support-chat: step 1 (a tasks backend for the delayed emails)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.foreign_host.urls"
ASGI_APPLICATION = "tests.foreign_host.asgi.application"  # support-chat: step 2

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{REPO_ROOT / '.foreign-host.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # The test database is a file, not :memory:, so the uvicorn process of the
    # server-backed tests shares it with the test process (one file per test run).
    DATABASES["default"]["TEST"] = {
        "NAME": str(REPO_ROOT / f".test-db-foreign-{os.getpid()}.sqlite3")
    }

AUTH_USER_MODEL = "accounts.Member"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REDIS_URL = os.environ.get("REDIS_URL")
# support-chat: step 2
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 1000}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# support-chat: step 2 (the delayed emails; `manage.py db_worker` runs them)
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

SUPPORT_CHAT = {
    # support-chat: step 2 (the inbox inside the host's own layout)
    "INBOX_BASE_TEMPLATE": "host/base.html",
    # support-chat: step 2 (absolute links in the emails)
    "EMAIL_BASE_URL": "https://members.example.net",
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The host's own API is for programs (HTTP Basic here; token or JWT on many sites):
    # no session. The chat's API still accepts the widget's session cookie.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Foreign Host API",
    "DESCRIPTION": "The host site's own API.",
    "VERSION": "1.0.0",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Tests collect into a temporary directory; by hand, into tmp/ (ignored by git).
STATIC_ROOT = os.environ.get("STATIC_ROOT") or str(REPO_ROOT / "tmp" / "foreign-host-static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Production logging: errors (500s with their traceback) go to the console, also with
# DEBUG off (Django's default console handler only logs while DEBUG is on).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["console"], "level": "ERROR"},
        "django_support_chat": {"handlers": ["console"], "level": "WARNING"},
    },
}
