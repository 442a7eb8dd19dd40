"""Fixtures of the foreign host's tests: its members (email login, optional name), API
clients through the real session stack, collected static files (the manifest storage needs
them even for the test client) and the host on a real uvicorn.

These tests run in a pytest process of their own, with
``DJANGO_SETTINGS_MODULE=tests.foreign_host.settings``; under the example project's settings
``tests/conftest.py`` does not collect this directory at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from rest_framework.test import APIClient

from . import server
from .helpers import STAFF_EMAIL

SETTINGS_MODULE = "tests.foreign_host.settings"


def pytest_configure(config: pytest.Config) -> None:
    if django_settings.SETTINGS_MODULE != SETTINGS_MODULE:
        raise pytest.UsageError(
            f"tests/foreign_host needs DJANGO_SETTINGS_MODULE={SETTINGS_MODULE} "
            f"(got {django_settings.SETTINGS_MODULE}); run it in a pytest process of its own."
        )


# Static files ----------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``collectstatic`` into a temporary STATIC_ROOT, once per run: with DEBUG off the
    manifest storage resolves ``{% static %}`` from the manifest only, as in production."""
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=str(root)):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root
    shutil.rmtree(root, ignore_errors=True)


# Members -------------------------------------------------------------------------------


def make_member(email: str, *, name: str = "", **fields: Any) -> Any:
    return get_user_model().objects.create_user(email=email, password="pw", name=name, **fields)


@pytest.fixture
def member(db: None) -> Callable[..., Any]:
    """``member(email, name="", **fields)``: a new member (password ``pw``)."""
    return make_member


@pytest.fixture
def customer(db: None) -> Any:
    """A customer with a name."""
    return make_member("alice@customers.example", name="Alice Archer")


@pytest.fixture
def nameless_customer(db: None) -> Any:
    """A customer who never set a name: known by the email address alone."""
    return make_member("bob.baker@customers.example")


@pytest.fixture
def other_customer(db: None) -> Any:
    return make_member("carol.cook@customers.example", name="Carol Cook")


@pytest.fixture
def staff(db: None) -> Any:
    """Support staff without a name: customers must never see this email address."""
    return make_member(STAFF_EMAIL, is_staff=True)


@pytest.fixture
def admin(db: None) -> Any:
    return get_user_model().objects.create_superuser(
        email="root@staff.example", password="pw", name="Root Admin"
    )


# Clients -------------------------------------------------------------------------------


def api_client(user: Any = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def page_client(user: Any = None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def customer_api(customer: Any) -> APIClient:
    return api_client(customer)


@pytest.fixture
def staff_api(staff: Any) -> APIClient:
    return api_client(staff)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


# The host on uvicorn -------------------------------------------------------------------


@pytest.fixture(scope="module")
def _module_server(
    django_db_setup: None, django_db_blocker: Any, collected_static: Path
) -> Iterator[server.Server]:
    """The foreign host on uvicorn (DEBUG off, whitenoise, the Redis channel layer),
    sharing the test database; one per test module. At the end of the module its whole
    log must be free of errors."""
    with django_db_blocker.unblock():
        process = server.start(static_root=collected_static)
    yield process
    process.stop()
    server.assert_clean_log(process.log_path)


@pytest.fixture
def host_server(_module_server: server.Server, transactional_db: None) -> Iterator[server.Server]:
    """The module's uvicorn; after each test, what the test added to the log has no 500,
    no traceback and no "Internal Server Error"."""
    start = _module_server.log_size()
    yield _module_server
    server.assert_clean_log(_module_server.log_path, start=start)
