"""Every input is answered, never with a 5xx: OPTIONS on every route, any cursor string."""

from __future__ import annotations

import base64

import pytest
from django.urls import URLPattern

from django_support_chat.api.routes import urlpatterns

from .conftest import API
from .factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def _route_paths(pk: int) -> list[str]:
    paths = []
    for pattern in urlpatterns:
        assert isinstance(pattern, URLPattern)
        paths.append(API + str(pattern.pattern).replace("<int:pk>", str(pk)))
    return [*paths, API + "schema/"]


def test_every_route_is_listed():
    # A new route is covered by the OPTIONS test without being named there.
    assert len(_route_paths(1)) == len(urlpatterns) + 1 >= 11


@pytest.mark.parametrize("role", ["anonymous", "owner", "staff"])
def test_options_on_every_route_is_never_a_server_error(api_for, role, conversation):
    client = api_for(role)
    for path in _route_paths(conversation.pk):
        response = client.options(path)
        assert response.status_code in (200, 401, 403), (path, response.status_code)
        if response.status_code == 200 and path != API + "schema/":
            body = response.json()
            assert body["name"] and "actions" not in body  # bodies: see the OpenAPI schema


def test_options_on_ws_token_answers_for_a_signed_in_user(customer_api):
    response = customer_api.options(API + "ws-token")
    assert response.status_code == 200
    assert response.json()["parses"] == ["application/json"]


def _b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.b64encode(data).decode("ascii")


CRAFTED_CURSORS = [
    "cj0xJnA9eHh4",  # r=1&p=xxx, the reported one
    _b64("p=xxx"),
    _b64("p="),
    _b64("p=-1"),
    _b64("p=1.5"),
    _b64("p=1e400"),
    _b64("p=" + "9" * 30),
    _b64("p=" + "9" * 5000),
    _b64("p=-" + "9" * 30),
    _b64(f"p={2**63}"),
    _b64(f"p={-(2**63) - 1}"),
    _b64("p=%00"),
    _b64("p=true"),
    _b64("p=2026-03-02 09:15:27.412345+00:00"),
    _b64("p=2026-03-02 09:15:27"),  # naive
    _b64("p=0001-01-01 00:00:00+05:00"),  # before year 1 in UTC
    _b64("p=9999-12-31 23:59:59-05:00"),  # after year 9999 in UTC
    _b64("p=2026-13-45 99:99:99+00:00"),
    _b64("p=2026-03-02T09:15:27+99:00"),
    _b64("p=١٢٣"),  # Arabic-Indic digits
    _b64("p=\U0001d7d9\U0001d7da"),  # mathematical digits
    _b64("p=\u00e9\u00e8"),
    _b64("o=" + "9" * 40),
    _b64("o=-5"),
    _b64("o=abc"),
    _b64("r=abc"),
    _b64("r=" + "9" * 40),
    _b64("o=1&r=1&p=1&p=x"),
    _b64(b"\xff\xfe\x00garbage"),
    _b64(bytes(range(256))),
    "not base64 !!!",
    "====",
    "é",
    "\u202e",
    "💥",
    "%",
    "",
    "a" * 10000,
]


@pytest.fixture
def paginated_paths(conversation, customer, staff):
    for i in range(3):
        MessageFactory(conversation=conversation, sender=customer, text=f"m{i}")
    ConversationFactory()
    base = f"{API}conversations/{conversation.pk}/messages/"
    return [
        ("owner", API + "conversations/"),
        ("owner", base),
        ("owner", base + "?after=0"),
        ("staff", API + "inbox/"),
        ("staff", API + "inbox/?status=open&search=m"),
    ]


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS, ids=range(len(CRAFTED_CURSORS)))
def test_any_cursor_is_answered_with_400_or_404(api_for, paginated_paths, cursor):
    for role, path in paginated_paths:
        separator = "&" if "?" in path else "?"
        response = api_for(role).get(path + separator, {"cursor": cursor, "page_size": 1})
        assert response.status_code in (200, 400, 404), (path, cursor, response.status_code)
        if response.status_code == 404:
            assert response.json() == {"detail": "Invalid cursor"}
        elif response.status_code == 400:
            assert isinstance(response.json(), dict)  # an object naming fields, never a list


def test_cursors_the_api_made_still_work(customer_api, conversation, customer):
    """The checks refuse crafted positions only: every next and previous link works."""
    for i in range(5):
        MessageFactory(conversation=conversation, sender=customer, text=f"m{i}")
    for path in (
        f"{API}conversations/{conversation.pk}/messages/?page_size=2",
        f"{API}conversations/{conversation.pk}/messages/?after=0&page_size=2",
    ):
        page = customer_api.get(path).json()
        seen = [m["id"] for m in page["results"]]
        while page["next"]:
            page = customer_api.get(page["next"]).json()
            seen += [m["id"] for m in page["results"]]
        assert len(seen) == len(set(seen)) == 5
        back = customer_api.get(page["previous"]).json()
        assert back["results"]


def test_conversation_cursors_the_api_made_still_work(staff_api, staff):
    for _ in range(5):
        ConversationFactory()
    page = staff_api.get(f"{API}inbox/?page_size=2").json()
    seen = [c["id"] for c in page["results"]]
    while page["next"]:
        page = staff_api.get(page["next"]).json()
        seen += [c["id"] for c in page["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert staff_api.get(page["previous"]).json()["results"]
