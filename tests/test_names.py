"""Names come from one place (``names``), work with any user model, never leak a staff
member's login or email to customers, and a broken host hook never loses data."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks

from django_support_chat import names, payloads, services
from django_support_chat.models import Conversation, Message

from .conftest import API
from .factories import ConversationFactory, UserFactory, send

pytestmark = pytest.mark.django_db

LEAKS = ("agent.smith", "staff.example")


def broken_hook(user):
    raise RuntimeError("the host's hook is broken")


def blank_hook(user):
    return None


def nickname(user):
    return f"Agent {user.pk}"


@pytest.fixture
def nameless_staff(db):
    """A staff member with no name: only a login and an email address."""
    return UserFactory(
        staff=True,
        username="agent.smith",
        first_name="",
        last_name="",
        email="agent.smith@staff.example",
    )


class TestDefaults:
    def test_full_name_when_set(self, customer, staff):
        assert names.customer_name(customer) == "Alice Archer"
        assert names.staff_name(staff) == "Sam Support"

    def test_blank_names_fall_back_without_none(self, nameless_staff):
        customer = UserFactory(username="c.login", first_name="", last_name="")
        assert names.customer_name(customer) == "c.login"
        assert names.staff_name(nameless_staff) == "Support"
        # Colleagues tell nameless staff apart by login, inside the inbox only.
        assert names.staff_label(nameless_staff) == "agent.smith"

    def test_first_name_alone(self):
        staff = UserFactory(staff=True, first_name="Sam", last_name="")
        assert names.staff_name(staff) == "Sam"

    @pytest.mark.parametrize("value", [None, "None", "None None", "   "])
    def test_none_like_values_are_never_shown(self, value):
        class Odd:
            pk = 7

            def get_full_name(self):
                return value

            def get_username(self):
                return value

        assert names.customer_name(Odd()) == "User 7"
        assert names.staff_name(Odd()) == "Support"

    def test_team_name_follows_the_widget_title(self, nameless_staff, settings):
        settings.SUPPORT_CHAT = {"WIDGET_TEXTS": {"title": "Acme Help"}}
        assert names.staff_name(nameless_staff) == "Acme Help"

    def test_search_fields_come_from_the_model(self):
        assert names.model_search_fields() == ["username", "email", "first_name", "last_name"]


class TestHooks:
    def test_hooks_name_people(self, customer, staff, settings):
        settings.SUPPORT_CHAT = {
            "CUSTOMER_DISPLAY_NAME": "tests.test_names.nickname",
            "STAFF_DISPLAY_NAME": "tests.test_names.nickname",
        }
        assert names.customer_name(customer) == f"Agent {customer.pk}"
        assert names.staff_name(staff) == f"Agent {staff.pk}"

    @pytest.mark.parametrize("hook", ["broken_hook", "blank_hook"])
    def test_a_bad_hook_falls_back_to_the_default(self, hook, customer, staff, settings, caplog):
        settings.SUPPORT_CHAT = {
            "CUSTOMER_DISPLAY_NAME": f"tests.test_names.{hook}",
            "STAFF_DISPLAY_NAME": f"tests.test_names.{hook}",
        }
        with caplog.at_level(logging.ERROR, logger="django_support_chat.names"):
            assert names.customer_name(customer) == "Alice Archer"
            assert names.staff_name(staff) == "Sam Support"
        assert ("broken" in caplog.text) == (hook == "broken_hook")

    def test_a_hook_that_does_not_import_falls_back(self, customer, settings, caplog):
        settings.SUPPORT_CHAT = {"CUSTOMER_DISPLAY_NAME": "nowhere.to.be.found"}
        with caplog.at_level(logging.ERROR, logger="django_support_chat.names"):
            assert names.customer_name(customer) == "Alice Archer"
        assert "CUSTOMER_DISPLAY_NAME" in caplog.text


class TestABrokenHookNeverLosesData:
    """With both hooks raising, every state change still happens and answers 2xx."""

    @pytest.fixture(autouse=True)
    def _broken(self, settings):
        settings.SUPPORT_CHAT = {
            "CUSTOMER_DISPLAY_NAME": "tests.test_names.broken_hook",
            "STAFF_DISPLAY_NAME": "tests.test_names.broken_hook",
        }

    def test_first_visit_creates_the_conversation(self, customer, customer_api):
        response = customer_api.get(f"{API}conversations/")
        assert response.status_code == 200
        assert Conversation.objects.filter(customer=customer).count() == 1
        assert response.json()["results"][0]["customer"]["name"] == "Alice Archer"

    def test_sends_are_stored_and_answered(self, conversation, customer_api, staff_api, staff):
        sent = customer_api.post(
            f"{API}conversations/{conversation.pk}/messages/",
            {"text": "hello", "client_id": "0b6f1a8e-3f0e-4a53-9a7d-3b2f6f9d1c11"},
            format="json",
        )
        assert sent.status_code == 201
        reply = staff_api.post(
            f"{API}conversations/{conversation.pk}/messages/",
            {"text": "hi", "client_id": "1b6f1a8e-3f0e-4a53-9a7d-3b2f6f9d1c11"},
            format="json",
        )
        assert reply.status_code == 201
        assert reply.json()["sender"]["name"] == "Sam Support"
        assert Message.objects.filter(conversation=conversation).count() == 2

    def test_events_still_go_out(
        self, conversation, customer, staff, channel_layer, django_capture_on_commit_callbacks
    ):
        channel = channel_layer.subscribe(f"support_chat.conversation.{conversation.pk}")
        with django_capture_on_commit_callbacks(execute=True):
            send(conversation, customer, "hello")
            services.assign(conversation, staff, staff)
        events = channel_layer.drain(channel)
        assert [e["type"] for e in events] == ["message:new", "conversation:updated"]
        assert events[0]["data"]["message"]["sender"]["name"] == "Alice Archer"


def test_event_payloads_are_built_after_the_commit(
    conversation, customer, settings, django_capture_on_commit_callbacks
):
    """Names (host code) are never called under the conversation's row lock."""
    calls = []

    def recording(user):
        calls.append(user.pk)
        return "Recorded"

    settings.SUPPORT_CHAT = {"CUSTOMER_DISPLAY_NAME": recording}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.send_message(
            conversation, customer, "hello", "2b6f1a8e-3f0e-4a53-9a7d-3b2f6f9d1c11"
        )
    assert calls == []
    for callback in callbacks:
        callback()
    assert calls == [customer.pk]


class TestStaffPrivacy:
    """Nothing a customer receives names a staff member by login or email address."""

    def test_rest_responses_a_customer_gets(self, customer, customer_api, nameless_staff):
        conversation = ConversationFactory(customer=customer)
        send(conversation, customer, "hello")
        services.assign(conversation, nameless_staff, nameless_staff)
        send(conversation, nameless_staff, "How can I help?")
        services.mark_read(conversation, nameless_staff)
        bodies = [
            customer_api.get(f"{API}conversations/"),
            customer_api.get(f"{API}conversations/{conversation.pk}/"),
            customer_api.get(f"{API}conversations/{conversation.pk}/messages/"),
            customer_api.get(f"{API}conversations/{conversation.pk}/messages/?after=0"),
            customer_api.get(f"{API}unread_count"),
        ]
        for response in bodies:
            assert response.status_code == 200
            text = response.content.decode()
            assert not any(leak in text for leak in LEAKS), text
        messages = bodies[2].json()["results"]
        assert {m["sender"]["name"] for m in messages} == {"Alice Archer", "Support"}
        assert bodies[1].json()["assigned_to"]["name"] == "Support"

    def test_event_payloads(
        self, customer, nameless_staff, channel_layer, django_capture_on_commit_callbacks
    ):
        conversation = ConversationFactory(customer=customer)
        channel = channel_layer.subscribe(f"support_chat.conversation.{conversation.pk}")
        with django_capture_on_commit_callbacks(execute=True):
            services.assign(conversation, nameless_staff, nameless_staff)
            send(conversation, nameless_staff, "hi")
            services.close(conversation, nameless_staff)
            services.reopen(conversation, nameless_staff)
        events = channel_layer.drain(channel)
        assert len(events) == 4
        assert not any(leak in json.dumps(events) for leak in LEAKS)
        reply = payloads.message_data(Message.objects.get(conversation=conversation))
        assert reply["sender"]["name"] == "Support"


class TestSearchFields:
    def test_a_setting_chooses_the_fields(self, staff_api, customer, settings):
        conversation = ConversationFactory(customer=customer)
        send(conversation, customer, "about my invoice")
        found = staff_api.get(f"{API}inbox/?search=alice").json()["results"]
        assert [c["id"] for c in found] == [conversation.pk]
        settings.SUPPORT_CHAT = {"CUSTOMER_SEARCH_FIELDS": ["email"]}
        assert staff_api.get(f"{API}inbox/?search=Archer").json()["results"] == []
        found = staff_api.get(f"{API}inbox/?search=alice%40example").json()["results"]
        assert [c["id"] for c in found] == [conversation.pk]
        found = staff_api.get(f"{API}inbox/?search=invoice").json()["results"]
        assert [c["id"] for c in found] == [conversation.pk]

    def test_admin_searches_answer(self, admin, customer, client):
        conversation = ConversationFactory(customer=customer)
        send(conversation, customer, "about my invoice")
        client.force_login(admin)
        for model in ("conversation", "message", "auditentry", "notification"):
            response = client.get(f"/admin/support_chat/{model}/?q=alice")
            assert response.status_code == 200, model
        response = client.get("/admin/support_chat/conversation/?q=alice")
        assert f"/admin/support_chat/conversation/{conversation.pk}/" in response.text

    @pytest.mark.parametrize(
        ("fields", "problem"),
        [
            (["email", "username", "nope"], "lacks: nope"),
            (["email__x"], "lacks: email__x"),
            ("email", "must be a list"),
        ],
    )
    def test_fields_the_model_lacks_are_reported(self, fields, problem, settings):
        settings.SUPPORT_CHAT = {"CUSTOMER_SEARCH_FIELDS": fields}
        errors = [e for e in run_checks() if e.id == "support_chat.E006"]
        assert len(errors) == 1 and problem in errors[0].msg

    def test_the_model_fields_pass_the_check(self, settings):
        fields = names.model_search_fields()
        settings.SUPPORT_CHAT = {"CUSTOMER_SEARCH_FIELDS": fields}
        assert not [e for e in run_checks() if e.id == "support_chat.E006"]
        assert get_user_model().USERNAME_FIELD in fields
