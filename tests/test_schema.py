"""The OpenAPI schema: the chat's own (``<mount>/schema/``) and the chat inside a host's schema.

No mocks: schemas come from drf-spectacular's ``spectacular`` command (``--validate
--fail-on-warn``, as sites run it in CI) or from the served views, and real API answers are
validated against the schema they are declared with (``jsonschema``).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import override_settings
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.management.commands.spectacular import Command as SpectacularCommand
from drf_spectacular.settings import patched_settings, spectacular_settings
from drf_spectacular.validation import validate_schema
from jsonschema import Draft202012Validator

from django_support_chat import services
from django_support_chat.api.schema import CHAT_SCHEMA_SETTINGS, exclude_chat_endpoints
from django_support_chat.models import Conversation

from .conftest import API
from .factories import ConversationFactory, UserFactory, send

pytestmark = pytest.mark.django_db

CHAT_URLCONF = "django_support_chat.api.routes"
HOST_URLCONF = "tests.urls_host_schema"
PREFIX = "SupportChat"

# What each operation can answer besides its success: the errors its code can produce.
EXPECTED_RESPONSES = {
    "support_chat_conversations_list": {200, 400, 401, 403, 404, 429, 503},  # 400: page_size
    "support_chat_conversations_retrieve": {200, 401, 403, 404, 429, 503},
    "support_chat_conversations_messages_list": {200, 400, 401, 403, 404, 429, 503},
    "support_chat_conversations_messages_create": {
        200,
        201,
        400,
        401,
        403,
        404,
        409,
        415,
        429,
        503,
    },
    "support_chat_conversations_read_create": {200, 400, 401, 403, 404, 415, 429, 503},
    "support_chat_conversations_assign_create": {200, 400, 401, 403, 404, 415, 429, 503},
    "support_chat_conversations_close_create": {200, 401, 403, 404, 429, 503},
    "support_chat_conversations_reopen_create": {200, 401, 403, 404, 429, 503},
    "support_chat_unread_count_retrieve": {200, 401, 403, 429, 503},
    "support_chat_inbox_list": {200, 400, 401, 403, 404, 429, 503},
    "support_chat_notifications_list": {200, 400, 401, 403, 404, 429, 503},
    "support_chat_notifications_unread_count_retrieve": {200, 401, 403, 429, 503},
    "support_chat_notifications_read_create": {200, 400, 401, 403, 415, 429, 503},
    "support_chat_notifications_preferences_retrieve": {200, 401, 403, 429, 503},
    "support_chat_notifications_preferences_partial_update": {200, 400, 401, 403, 415, 429, 503},
    "support_chat_ws_token_create": {200, 401, 403, 429, 503},
}


def spectacular(tmp_path: Path, *args: str) -> dict[str, Any]:
    """``manage.py spectacular --validate --fail-on-warn``: raises on any warning, error or
    invalid schema; returns the schema it wrote."""
    out = tmp_path / f"schema-{uuid.uuid4().hex}.json"
    call_command(
        SpectacularCommand(),
        "--validate",
        "--fail-on-warn",
        "--format",
        "openapi-json",
        "--file",
        str(out),
        *args,
    )
    assert not GENERATOR_STATS, "the schema generation warned"
    return json.loads(out.read_text())


def served(client: Any, url: str) -> dict[str, Any]:
    response = client.get(url, {"format": "json"})
    assert response.status_code == 200, response.content
    assert not GENERATOR_STATS, "the schema generation warned"
    schema = json.loads(response.content)
    validate_schema(schema)
    return schema


def operations(schema: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, operation)."""
    return {
        op["operationId"]: (method, path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    }


def chat_component_names(schema: dict[str, Any]) -> set[str]:
    """Names of every component the chat's operations use, followed through ``$ref``s."""
    found: set[str] = set()
    components = schema["components"]["schemas"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    walk(components[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for _method, _path, op in operations(schema).values():
        if op["operationId"].startswith("support_chat_"):
            walk(op)
    return found


@pytest.fixture(scope="module")
def chat_schema() -> dict[str, Any]:
    """The chat's schema as ``<mount>/schema/`` builds it."""
    with patched_settings(CHAT_SCHEMA_SETTINGS):
        schema = SchemaGenerator(urlconf=CHAT_URLCONF).get_schema(request=None, public=True)
    assert not GENERATOR_STATS
    return json.loads(json.dumps(schema))  # plain JSON types, as clients see it


# The chat's own schema -----------------------------------------------------------------


class TestChatSchema:
    def test_spectacular_validate_fail_on_warn_passes(self, tmp_path):
        schema = spectacular(
            tmp_path,
            "--urlconf",
            CHAT_URLCONF,
            "--custom-settings",
            "django_support_chat.api.schema.CHAT_SCHEMA_SETTINGS",
        )
        assert set(operations(schema)) == set(EXPECTED_RESPONSES)

    def test_served_schema_is_valid_without_warnings(self, anon_api):
        schema = served(anon_api, f"{API}schema/")
        assert set(operations(schema)) == set(EXPECTED_RESPONSES)
        assert schema["servers"] == [{"url": "/api/chat"}]
        assert schema["info"]["title"] == "django-support-chat API"

    def test_every_component_is_prefixed(self, chat_schema):
        assert set(chat_schema["components"]) == {"schemas", "securitySchemes"}
        names = set(chat_schema["components"]["schemas"])
        assert names, "no components at all"
        assert {n for n in names if not n.startswith(PREFIX)} == set()
        assert names == chat_component_names(chat_schema)
        assert {
            "SupportChatUser",
            "SupportChatMessage",
            "SupportChatConversation",
            "SupportChatMessagePage",
            "SupportChatConversationPage",
            "SupportChatError",
            "SupportChatValidationError",
            "SupportChatSenderSideEnum",
            "SupportChatMessageStatusEnum",
            "SupportChatConversationStatusEnum",
            "SupportChatNotification",
            "SupportChatNotificationPage",
            "SupportChatNotificationTypeEnum",
            "SupportChatNotificationRead",
            "SupportChatNotificationReadResult",
            "SupportChatNotificationUnreadCount",
        } <= names
        # The authentication schemes are the site's DRF authentication classes, shared with
        # the host's own endpoints: drf-spectacular's names for them, not the chat's.
        assert set(chat_schema["components"]["securitySchemes"]) <= {"cookieAuth", "basicAuth"}

    def test_every_operation_is_prefixed_and_tagged(self, chat_schema):
        for operation_id, (_method, _path, op) in operations(chat_schema).items():
            assert operation_id.startswith("support_chat_")
            assert op["tags"] == ["support-chat"]
        assert [t["name"] for t in chat_schema["tags"]] == ["support-chat"]

    def test_only_the_chat_endpoints_and_not_the_schema_view(self, chat_schema):
        assert set(chat_schema["paths"]) == {
            "/conversations/",
            "/conversations/{id}/",
            "/conversations/{id}/messages/",
            "/conversations/{id}/read",
            "/conversations/{id}/assign",
            "/conversations/{id}/close",
            "/conversations/{id}/reopen",
            "/unread_count",
            "/inbox/",
            "/notifications/",
            "/notifications/unread_count",
            "/notifications/preferences/",
            "/notifications/read",
            "/ws-token",
        }

    def test_enums_are_components_never_inline(self, chat_schema):
        """drf-spectacular names inline enums after their field across the whole schema
        (``StatusEnum``): inline, ours would rename or replace a host's."""
        inline = [
            (name, prop)
            for name, component in chat_schema["components"]["schemas"].items()
            for prop, spec in component.get("properties", {}).items()
            if "enum" in spec or "enum" in spec.get("items", {})
        ]
        assert inline == []
        schemas = chat_schema["components"]["schemas"]
        assert schemas["SupportChatSenderSideEnum"]["enum"] == ["user", "staff"]
        assert schemas["SupportChatMessageStatusEnum"]["enum"] == ["sent", "delivered", "read"]
        assert schemas["SupportChatConversationStatusEnum"]["enum"] == ["open", "closed"]

    def test_error_responses_are_declared(self, chat_schema):
        for operation_id, (_method, _path, op) in operations(chat_schema).items():
            codes = {int(code) for code in op["responses"]}
            assert codes == EXPECTED_RESPONSES[operation_id], operation_id
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    assert response["description"], (operation_id, code)
                    body = response["content"]["application/json"]["schema"]["$ref"]
                    name = body.rsplit("/", 1)[1]
                    expected = {"SupportChatError"}
                    if code == "503":
                        expected = {"SupportChatUnavailable"}
                    if code == "400":
                        expected = {"SupportChatValidationError", "SupportChatBadRequest"}
                    assert name in expected, (operation_id, code, name)
            assert set(op["responses"]["429"]["headers"]) == {"Retry-After"}
            assert set(op["responses"]["503"]["headers"]) == {"Retry-After"}

    def test_error_components(self, chat_schema):
        schemas = chat_schema["components"]["schemas"]
        assert schemas["SupportChatError"]["required"] == ["detail"]
        assert schemas["SupportChatValidationError"]["additionalProperties"] == {
            "type": "array",
            "items": {"type": "string"},
        }
        assert schemas["SupportChatBadRequest"] == {
            "oneOf": [
                {"$ref": "#/components/schemas/SupportChatValidationError"},
                {"$ref": "#/components/schemas/SupportChatError"},
            ]
        }

    def test_message_text_may_not_be_blank(self, chat_schema):
        text = chat_schema["components"]["schemas"]["SupportChatMessageCreate"]["properties"]
        assert text["text"]["type"] == "string"
        assert text["text"]["minLength"] == 1

    def test_pages_declare_their_real_shape(self, chat_schema):
        schemas = chat_schema["components"]["schemas"]
        for page, item in [
            ("SupportChatMessagePage", "SupportChatMessage"),
            ("SupportChatConversationPage", "SupportChatConversation"),
        ]:
            assert set(schemas[page]["properties"]) == {"next", "previous", "results"}
            assert set(schemas[page]["required"]) == {"next", "previous", "results"}
            results = schemas[page]["properties"]["results"]
            assert results["type"] == "array"
            assert results["items"] == {"$ref": f"#/components/schemas/{item}"}
            assert schemas[page]["properties"]["next"]["nullable"] is True
        ops = operations(chat_schema)
        for operation_id in [
            "support_chat_conversations_list",
            "support_chat_conversations_messages_list",
            "support_chat_inbox_list",
        ]:
            _method, _path, op = ops[operation_id]
            assert {"cursor", "page_size"} <= {p["name"] for p in op["parameters"]}

    def test_host_hooks_and_path_rewrites_stay_out(self, anon_api, monkeypatch):
        """A host's SPECTACULAR_SETTINGS (here: leaving the chat out of the host's schema,
        an extra component, a path prefix) do not change the chat's own schema.

        drf-spectacular reads SPECTACULAR_SETTINGS once: set on its settings object."""
        monkeypatch.setattr(
            spectacular_settings,
            "PREPROCESSING_HOOKS",
            [exclude_chat_endpoints],
        )
        monkeypatch.setattr(spectacular_settings, "APPEND_COMPONENTS", {"schemas": {"Host": {}}})
        monkeypatch.setattr(spectacular_settings, "SCHEMA_PATH_PREFIX_INSERT", "/host")
        schema = served(anon_api, f"{API}schema/")
        assert set(operations(schema)) == set(EXPECTED_RESPONSES)
        assert "/conversations/" in schema["paths"]
        assert all(name.startswith(PREFIX) for name in schema["components"]["schemas"])


# Real answers against the declared schema ----------------------------------------------


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema, strict: ``nullable`` becomes a null
    alternative and objects with declared properties allow no others."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "properties":
            result[key] = {name: to_json_schema(spec) for name, spec in value.items()}
        else:
            result[key] = to_json_schema(value)
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    if result.pop("nullable", False):
        return {"anyOf": [result, {"type": "null"}]}
    return result


class Checker:
    """Validates answers against the response their operation declares for their status."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.operations = operations(schema)
        self.components = to_json_schema(copy.deepcopy(schema["components"]))
        self.seen: set[tuple[str, int]] = set()

    def __call__(self, operation_id: str, response: Any, status: int) -> Any:
        assert response.status_code == status, (operation_id, response.content)
        _method, _path, op = self.operations[operation_id]
        declared = op["responses"].get(str(status))
        assert declared is not None, f"{operation_id} does not declare {status}"
        body = response.json()
        body_schema = declared["content"]["application/json"]["schema"]
        validator = Draft202012Validator(
            {**to_json_schema(body_schema), "components": self.components},
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], (operation_id, status, body)
        for header in declared.get("headers", {}):
            assert response.has_header(header), (operation_id, status, header)
        self.seen.add((operation_id, status))
        return body


@pytest.fixture
def check(chat_schema):
    return Checker(chat_schema)


def url(pk: int, action: str = "") -> str:
    return f"{API}conversations/{pk}/{action}"


def post_message(client: Any, pk: int, text: Any = "hello", client_id: Any = None) -> Any:
    payload = {"text": text, "client_id": str(client_id or uuid.uuid4())}
    return client.post(url(pk, "messages/"), payload, format="json")


class TestAnswersMatchTheSchema:
    def test_every_operation_success(self, check, customer, customer_api, staff, staff_api):
        ops = "support_chat_conversations_"
        page = check(ops + "list", customer_api.get(f"{API}conversations/"), 200)
        [row] = page["results"]
        assert page["next"] is None and page["previous"] is None
        pk = row["id"]
        conversation = Conversation.objects.get(pk=pk)
        for i in range(3):
            send(conversation, customer, f"customer {i} https://example.com")
        send(conversation, staff, "staff answer")
        services.mark_read(conversation, staff)
        conversation.refresh_from_db()
        ConversationFactory(customer=UserFactory(customer=True))  # a second inbox row

        check(ops + "retrieve", customer_api.get(url(pk)), 200)

        # History, newest first, over two pages: next, then previous.
        first = check(
            ops + "messages_list", customer_api.get(url(pk, "messages/?page_size=3")), 200
        )
        assert first["next"] and first["previous"] is None
        older = check(ops + "messages_list", customer_api.get(first["next"]), 200)
        assert older["previous"] and older["next"] is None
        assert [m["sender"] for m in older["results"]] == [
            {"id": customer.pk, "name": "Alice Archer"}
        ]

        # Catch-up, oldest first: next leads forward, null once caught up.
        after = first["results"][-1]["id"]
        caught = check(
            ops + "messages_list", customer_api.get(url(pk, f"messages/?after={after}")), 200
        )
        assert [m["id"] for m in caught["results"]] == sorted(m["id"] for m in caught["results"])
        assert caught["next"] is None
        partial = check(
            ops + "messages_list",
            customer_api.get(url(pk, "messages/?after=0&page_size=2")),
            200,
        )
        assert partial["next"]

        client_id = uuid.uuid4()
        check(ops + "messages_create", post_message(customer_api, pk, "new", client_id), 201)
        check(ops + "messages_create", post_message(customer_api, pk, "again", client_id), 200)
        check(ops + "read_create", customer_api.post(url(pk, "read"), {}, format="json"), 200)

        unread = check(
            "support_chat_unread_count_retrieve", customer_api.get(f"{API}unread_count"), 200
        )
        assert "staff_unread_conversations" not in unread
        unread = check(
            "support_chat_unread_count_retrieve", staff_api.get(f"{API}unread_count"), 200
        )
        assert "staff_unread_conversations" in unread

        inbox = check("support_chat_inbox_list", staff_api.get(f"{API}inbox/?page_size=1"), 200)
        assert inbox["next"]
        check("support_chat_inbox_list", staff_api.get(inbox["next"]), 200)
        check("support_chat_inbox_list", staff_api.get(f"{API}inbox/?status=open&unread=true"), 200)

        assigned = check(
            ops + "assign_create",
            staff_api.post(url(pk, "assign"), {"assignee": staff.pk}, format="json"),
            200,
        )
        assert assigned["assigned_to"]["id"] == staff.pk
        check(
            ops + "assign_create",
            staff_api.post(url(pk, "assign"), {"assignee": None}, format="json"),
            200,
        )
        check(ops + "close_create", staff_api.post(url(pk, "close")), 200)
        check(ops + "reopen_create", staff_api.post(url(pk, "reopen")), 200)
        check("support_chat_ws_token_create", customer_api.post(f"{API}ws-token"), 200)

        # The staff reply and the closing notified the customer.
        notes = check(
            "support_chat_notifications_list",
            customer_api.get(f"{API}notifications/?page_size=1"),
            200,
        )
        assert notes["next"]
        check("support_chat_notifications_list", customer_api.get(notes["next"]), 200)
        count = check(
            "support_chat_notifications_unread_count_retrieve",
            customer_api.get(f"{API}notifications/unread_count"),
            200,
        )
        assert count["unread_count"] >= 1
        marked = check(
            "support_chat_notifications_read_create",
            customer_api.post(f"{API}notifications/read", {"all": True}, format="json"),
            200,
        )
        assert marked["unread_count"] == 0
        prefs = f"{API}notifications/preferences/"
        check("support_chat_notifications_preferences_retrieve", customer_api.get(prefs), 200)
        check(
            "support_chat_notifications_preferences_partial_update",
            customer_api.patch(prefs, {"email": False}, format="json"),
            200,
        )

        successes = {
            (op, min(c for c in codes if c < 300)) for op, codes in EXPECTED_RESPONSES.items()
        }
        assert successes <= check.seen

    def test_errors(
        self, check, customer_api, other_api, staff_api, anon_api, conversation, customer
    ):
        ops = "support_chat_conversations_"
        pk = conversation.pk
        send(conversation, customer, "hello")

        body = check(ops + "messages_create", post_message(customer_api, pk, "   "), 400)
        assert body == {"text": ["Message text may not be blank."]}
        body = check(ops + "messages_create", post_message(customer_api, pk, ""), 400)
        assert body == {"text": ["Message text may not be blank."]}
        check(ops + "messages_create", post_message(customer_api, pk, "x", "not-a-uuid"), 400)
        parse_error = customer_api.post(
            url(pk, "messages/"), "{not json", content_type="application/json"
        )
        assert "detail" in check(ops + "messages_create", parse_error, 400)
        check(ops + "messages_list", customer_api.get(url(pk, "messages/?after=-1")), 400)
        check(
            ops + "read_create",
            customer_api.post(url(pk, "read"), {"up_to_id": -1}, format="json"),
            400,
        )
        check(
            ops + "assign_create",
            staff_api.post(url(pk, "assign"), {"assignee": 2**40}, format="json"),
            400,
        )
        check("support_chat_inbox_list", staff_api.get(f"{API}inbox/?assigned=nobody"), 400)
        notes = "support_chat_notifications_"
        for bad in ({}, {"all": False}, {"ids": []}, {"ids": ["x"]}, {"ids": [1], "all": True}):
            check(
                notes + "read_create",
                customer_api.post(f"{API}notifications/read", bad, format="json"),
                400,
            )
        check(notes + "list", customer_api.get(f"{API}notifications/?page_size=0"), 400)
        check(notes + "list", customer_api.get(f"{API}notifications/?cursor=bogus"), 404)
        check(
            notes + "unread_count_retrieve", anon_api.get(f"{API}notifications/unread_count"), 403
        )

        check(ops + "list", anon_api.get(f"{API}conversations/"), 403)
        check("support_chat_inbox_list", customer_api.get(f"{API}inbox/"), 403)
        check(
            ops + "assign_create",
            customer_api.post(url(pk, "assign"), {"assignee": None}, format="json"),
            403,
        )
        check(ops + "close_create", customer_api.post(url(pk, "close")), 403)
        check("support_chat_ws_token_create", anon_api.post(f"{API}ws-token"), 403)

        check(ops + "retrieve", other_api.get(url(pk)), 404)
        check(ops + "messages_create", post_message(other_api, pk), 404)
        check(ops + "messages_list", customer_api.get(url(pk, "messages/?cursor=bogus")), 404)
        check("support_chat_inbox_list", staff_api.get(f"{API}inbox/?cursor=bogus"), 404)

    def test_conflict_unsupported_media_type_and_throttled(
        self, check, customer_api, staff_api, staff, conversation
    ):
        ops = "support_chat_conversations_"
        pk = conversation.pk
        services.close(conversation, staff)
        body = check(ops + "messages_create", post_message(staff_api, pk), 409)
        assert body == {"detail": "This conversation is closed. Reopen it before replying."}
        form = customer_api.post(
            url(pk, "messages/"), {"text": "hi", "client_id": str(uuid.uuid4())}
        )
        check(ops + "messages_create", form, 415)

        cache.clear()  # throttle history: the posts above count against the send rate
        with override_settings(SUPPORT_CHAT={"THROTTLE_RATES": {"support_chat_send": "1/minute"}}):
            check(ops + "messages_create", post_message(customer_api, pk), 201)
            check(ops + "messages_create", post_message(customer_api, pk), 429)
        with override_settings(SUPPORT_CHAT={"THROTTLE_RATES": {"support_chat": "1/minute"}}):
            check(ops + "retrieve", customer_api.get(url(pk)), 200)
            check(ops + "retrieve", customer_api.get(url(pk)), 429)


# A host with its own schema ------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
HOST_SETTINGS = "tests.settings_host_schema"

# Run in the host's process: GET a URL with the test client (anonymous, no database).
SERVE = """
import json, sys
import django
django.setup()
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
response = Client().get(sys.argv[1], {"format": "json"})
print(json.dumps({"status": response.status_code, "warned": bool(GENERATOR_STATS),
                  "schema": json.loads(response.content)}))
"""


def host_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` as the host runs: its settings from the start."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": HOST_SETTINGS,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "example_project"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def host_spectacular(tmp_path: Path, *args: str) -> dict[str, Any]:
    """The host's CI: ``manage.py spectacular --validate --fail-on-warn``; exit status 0."""
    out = tmp_path / f"host-{uuid.uuid4().hex}.json"
    command = ["-m", "django", "spectacular", "--validate", "--fail-on-warn"]
    done = host_process(*command, "--format", "openapi-json", "--file", str(out), *args)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    return json.loads(out.read_text())


def host_served(path: str) -> dict[str, Any]:
    done = host_process("-c", SERVE, path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == 200, answer
    assert not answer["warned"], done.stderr
    validate_schema(answer["schema"])
    return answer["schema"]


class TestHostSchema:
    """``tests/urls_host_schema.py``: a host with its own ``User`` and ``StatusEnum``
    components and its own SpectacularAPIView over all its URLs, the chat included."""

    HOST_OPERATIONS = {"v1_me_retrieve", "v1_orders_retrieve"}
    HOST_SCHEMA_VIEWS = {"schema_retrieve", "schema_without_chat_retrieve"}

    def assert_host_components_are_the_hosts(self, schema: dict[str, Any]) -> None:
        schemas = schema["components"]["schemas"]
        assert schemas["User"]["properties"].keys() == {"email", "name"}
        assert schemas["StatusEnum"]["enum"] == ["pending", "shipped"]
        assert set(schemas["Order"]["properties"]) == {"id", "status"}
        assert schema["info"]["title"] == "Host API"

    def assert_chat_is_in(self, schema: dict[str, Any]) -> None:
        ops = operations(schema)
        chat = {op for op in ops if op.startswith("support_chat_")}
        assert chat == set(EXPECTED_RESPONSES)
        assert set(ops) - chat == self.HOST_OPERATIONS | self.HOST_SCHEMA_VIEWS
        for op in chat:
            _method, path, operation = ops[op]
            assert path.startswith("/api/chat/")
            assert operation["tags"] == ["support-chat"]
        # Every component but the host's three is the chat's, and prefixed.
        names = set(schema["components"]["schemas"])
        assert names - {"User", "StatusEnum", "Order"} == chat_component_names(schema)
        assert all(name.startswith(PREFIX) for name in chat_component_names(schema))
        # The chat's schema view is in no schema.
        assert "/api/chat/schema/" not in schema["paths"]

    def test_spectacular_validate_fail_on_warn_passes(self, tmp_path):
        schema = host_spectacular(tmp_path)
        self.assert_host_components_are_the_hosts(schema)
        self.assert_chat_is_in(schema)

    def test_with_split_request_components(self, tmp_path):
        schema = host_spectacular(tmp_path, "--custom-settings", f"{HOST_URLCONF}.SPLIT_REQUEST")
        self.assert_host_components_are_the_hosts(schema)
        self.assert_chat_is_in(schema)
        assert "SupportChatMessageCreateRequest" in schema["components"]["schemas"]

    def test_served_host_schema(self):
        schema = host_served("/api/schema/")
        self.assert_host_components_are_the_hosts(schema)
        self.assert_chat_is_in(schema)

    def test_exclude_hook_leaves_the_chat_out(self, tmp_path):
        for schema in [
            host_spectacular(tmp_path, "--custom-settings", f"{HOST_URLCONF}.WITHOUT_CHAT"),
            host_served("/api/schema-without-chat/"),
        ]:
            self.assert_host_components_are_the_hosts(schema)
            assert not any(path.startswith("/api/chat/") for path in schema["paths"])
            assert not any(n.startswith(PREFIX) for n in schema["components"]["schemas"])
            assert set(operations(schema)) == self.HOST_OPERATIONS | self.HOST_SCHEMA_VIEWS

    def test_chat_schema_under_the_host(self):
        """The chat's own schema, served by the host: the chat's endpoints only."""
        schema = host_served(f"{API}schema/")
        assert set(operations(schema)) == set(EXPECTED_RESPONSES)
        assert all(name.startswith(PREFIX) for name in schema["components"]["schemas"])
        assert schema["servers"] == [{"url": "/api/chat"}]
        assert schema["info"]["title"] == "django-support-chat API"
