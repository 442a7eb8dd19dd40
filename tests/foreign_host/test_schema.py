"""The host's own OpenAPI schema (drf-spectacular, ``DEFAULT_SCHEMA_CLASS`` AutoSchema) next
to the chat's: the chat must not take over the host's component names, and the host's
``spectacular --validate --fail-on-warn`` must still pass with the chat installed."""

from __future__ import annotations

from base64 import b64encode
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from .conftest import api_client
from .helpers import ok

pytestmark = pytest.mark.django_db

HOST_USER_FIELDS = {"id", "email", "name", "is_staff"}


def basic_client(user):
    """A client of the host's own API, which takes HTTP Basic (no session)."""
    client = api_client()
    credentials = b64encode(f"{user.email}:pw".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {credentials}")
    return client


def host_schema(client) -> dict:
    response = ok(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"))
    return response.json()


def test_the_hosts_user_component_is_the_hosts(customer):
    schema = host_schema(basic_client(customer))
    assert schema["info"]["title"] == "Foreign Host API"
    user = schema["components"]["schemas"]["User"]
    assert set(user["properties"]) == HOST_USER_FIELDS
    me = schema["paths"]["/api/v1/me/"]["get"]["responses"]["200"]["content"]
    assert me["application/json"]["schema"] == {"$ref": "#/components/schemas/User"}


def test_me_endpoint(customer):
    """The host's own API takes HTTP Basic only: the chat changed nothing about it."""
    assert api_client(customer).get("/api/v1/me/").status_code in (401, 403)  # no session
    body = ok(basic_client(customer).get("/api/v1/me/")).json()
    assert body == {
        "id": customer.pk,
        "email": customer.email,
        "name": "Alice Archer",
        "is_staff": False,
    }


def test_the_chat_components_do_not_collide_with_the_hosts(customer):
    schema = host_schema(basic_client(customer))
    components = schema["components"]["schemas"]
    # The chat's operations are in the host's schema (it documents every URL) and every
    # reference they make resolves to a component of the chat's own shape.
    chat_paths = [p for p in schema["paths"] if p.startswith("/api/chat/")]
    assert chat_paths
    for path in chat_paths:
        for operation in schema["paths"][path].values():
            for ref in _refs(operation):
                assert ref in components, (path, ref)
    assert set(components["User"]["properties"]) == HOST_USER_FIELDS


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
        for value in node.values():
            found += _refs(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_spectacular_validate_fail_on_warn(tmp_path: Path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert set(schema["components"]["schemas"]["User"]["properties"]) == HOST_USER_FIELDS


def test_the_chats_own_schema_view(customer):
    response = ok(
        api_client(customer).get(
            "/api/chat/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
        )
    )
    schema = response.json()
    assert schema["servers"] == [{"url": "/api/chat"}]
    assert "/conversations/" in schema["paths"]
