"""Property-based run of the REST API against its own OpenAPI schema (schemathesis).

Every operation of ``<mount>/schema/`` gets at most ``MAX_EXAMPLES`` generated requests, as
a customer and as staff (a real session cookie and the CSRF header), through Django's WSGI
application. Every answer must be no 5xx and exactly what the schema says: a documented
status code, content type and headers, and a body valid against the declared component.
Generation is derandomized: a failure reproduces on every run.

Runs in both the SQLite and the PostgreSQL steps of ``scripts/test.sh`` (not marked).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from django_support_chat.models import Notification

from .factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

APPLICATION = get_wsgi_application()
SCHEMA = schemathesis.openapi.from_wsgi("/api/chat/schema/?format=json", APPLICATION)
# The requests carry a real session (below); generated credentials for the declared
# security schemes (cookieAuth, basicAuth) would only ever be refused.
SCHEMA.config.generation.update(with_security_parameters=False)
OPERATIONS = {
    operation.definition.raw["operationId"]: operation
    for operation in (result.ok() for result in SCHEMA.get_all_operations())
}


# Negative cases need something to break: operations without parameters or body (ws-token,
# unread_count) get positive cases only.
RUNS = [
    (operation_id, mode)
    for operation_id, operation in sorted(OPERATIONS.items())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or list(operation.iter_parameters()) or operation.body
]


def test_every_operation_is_run():
    assert len(OPERATIONS) == 16, sorted(OPERATIONS)
    assert len(RUNS) == 28


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Django's WSGI handler closes the database connection after each request (Django's
    test client stops it the same way): the test's transaction must outlive them."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(settings: Any) -> dict[str, Any]:
    """A customer and a staff member with conversations and messages to find. Sending is
    not throttled here: 429 is documented, but would stop the run from reaching
    validation."""
    settings.SUPPORT_CHAT = {"THROTTLE_RATES": {"support_chat_send": None, "support_chat": None}}
    customer = UserFactory(customer=True, username="alice")
    staff = UserFactory(staff=True, username="sam")
    own = ConversationFactory(customer=customer)
    for i in range(3):
        MessageFactory(conversation=own, sender=customer, text=f"hello https://x.test/{i}")
    ConversationFactory()  # someone else's: 404 for the customer, visible to staff
    for user, kind in ((customer, Notification.Type.MESSAGE_RECEIVED), (staff, "assignment")):
        Notification.objects.create(user=user, type=kind, payload={"conversation_id": own.pk})
    return {"customer": customer, "staff": staff, "conversation": own}


def _signed_in(user: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Cookies and headers of a browser signed in as ``user``: a real session, and the
    CSRF cookie with its header (DRF's session authentication checks CSRF on POST)."""
    client = Client()
    client.force_login(user)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    csrf = _get_new_csrf_string()
    cookies = {django_settings.SESSION_COOKIE_NAME: session, django_settings.CSRF_COOKIE_NAME: csrf}
    return cookies, {"X-CSRFToken": csrf}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("role", ["customer", "staff"])
@pytest.mark.parametrize(("operation_id", "mode"), RUNS, ids=[f"{o}-{m}" for o, m in RUNS])
def test_operation_conforms_to_the_schema(world, role, operation_id, mode):
    operation = OPERATIONS[operation_id]
    cookies, headers = _signed_in(world[role])
    real_pk = world["conversation"].pk
    counter = itertools.count()

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time, full report
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        # Three of four cases name a conversation that exists, so the run gets past 404.
        bad_path = mode is GenerationMode.NEGATIVE and case.meta.is_negative_at(
            ParameterLocation.PATH
        )
        if not bad_path and "id" in (case.path_parameters or {}) and next(counter) % 4:
            case.path_parameters["id"] = real_pk
        response = case.call(headers=headers, cookies=cookies)
        seen.add(response.status_code)
        if bad_path:
            # "/conversations/-1/" is no URL of the API: the site's own 404 page answers.
            assert response.status_code == 404, response.status_code
            return
        case.validate_response(response, checks=CHECKS, headers=headers)

    seen: set[int] = set()
    run()
    # The session is real: every operation the role may use succeeded at least once.
    staff_only = {"assign", "close", "reopen", "inbox"} & set(operation_id.split("_"))
    if mode is GenerationMode.POSITIVE:
        if role == "customer" and staff_only:
            assert seen == {403}, seen
        else:
            assert any(200 <= code < 300 for code in seen), seen
