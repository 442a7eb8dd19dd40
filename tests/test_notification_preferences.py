"""The caller's notification preferences over REST (``notifications/preferences/``) and the
system checks of the email notifications."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import modify_settings, override_settings

from django_support_chat.models import NotificationPreference

from .conftest import API
from .test_email_notifications import IMMEDIATE_BACKEND

pytestmark = pytest.mark.django_db

URL = f"{API}notifications/preferences/"
DEFAULTS = {"email": True, "sound": False, "desktop": False}


class TestPreferencesEndpoint:
    def test_get_defaults_without_a_row(self, customer_api):
        response = customer_api.get(URL)
        assert response.status_code == 200
        assert response.json() == DEFAULTS
        assert not NotificationPreference.objects.exists()

    def test_patch_changes_only_what_is_sent(self, customer_api, customer):
        response = customer_api.patch(URL, {"email": False}, format="json")
        assert response.status_code == 200
        assert response.json() == {**DEFAULTS, "email": False}
        response = customer_api.patch(URL, {"sound": True, "desktop": True}, format="json")
        assert response.json() == {"email": False, "sound": True, "desktop": True}
        assert customer_api.get(URL).json() == {"email": False, "sound": True, "desktop": True}
        stored = NotificationPreference.objects.get(user=customer)
        assert (stored.email, stored.sound, stored.desktop) == (False, True, True)

    def test_empty_patch_changes_nothing(self, customer_api):
        response = customer_api.patch(URL, {}, format="json")
        assert response.status_code == 200
        assert response.json() == DEFAULTS

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "false"},
            {"email": 0},
            {"sound": "yes"},
            {"desktop": None},
            {"email": [True]},
            {"email": False, "push": True},
            [{"email": False}],
            "email",
        ],
    )
    def test_non_boolean_or_unknown_is_400_and_changes_nothing(self, customer_api, body):
        response = customer_api.patch(URL, body, format="json")
        assert response.status_code == 400
        assert isinstance(response.json(), dict)
        assert not NotificationPreference.objects.exists()

    def test_not_json_is_415(self, customer_api):
        response = customer_api.generic(
            "PATCH", URL, "email=false", content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 415

    def test_only_their_own(self, customer_api, other_api, customer, other_customer, staff_api):
        customer_api.patch(URL, {"email": False}, format="json")
        assert other_api.get(URL).json() == DEFAULTS
        assert staff_api.get(URL).json() == DEFAULTS
        other_api.patch(URL, {"sound": True}, format="json")
        assert NotificationPreference.for_user(customer).sound is False
        assert NotificationPreference.for_user(customer).email is False
        assert NotificationPreference.for_user(other_customer).email is True

    def test_anonymous_is_refused(self, anon_api):
        assert anon_api.get(URL).status_code in (401, 403)
        assert anon_api.patch(URL, {"email": False}, format="json").status_code in (401, 403)
        assert not NotificationPreference.objects.exists()

    def test_other_methods_405(self, customer_api):
        assert customer_api.post(URL, {"email": False}, format="json").status_code == 405
        assert customer_api.put(URL, {"email": False}, format="json").status_code == 405


def email_ids() -> list[str]:
    ids = (m.id or "" for m in run_checks(databases=[]))
    return sorted(i for i in ids if i in EMAIL_CHECK_IDS)


EMAIL_CHECK_IDS = {
    "support_chat.E010",
    "support_chat.E011",
    "support_chat.W010",
    "support_chat.W011",
    "support_chat.W012",
}
IMMEDIATE = {"default": {"BACKEND": IMMEDIATE_BACKEND}}


class TestChecks:
    def test_test_settings_are_clean(self):
        assert email_ids() == []

    @override_settings(TASKS=IMMEDIATE)
    def test_w010_backend_without_defer(self):
        assert email_ids() == ["support_chat.W010"]

    def test_e011_unknown_backend_alias(self, settings):
        settings.SUPPORT_CHAT = {"EMAIL_TASK_BACKEND": "mail"}
        assert email_ids() == ["support_chat.E011"]

    # Context managers, not the settings fixture: its teardown would undo them out of order.
    def test_w011_no_base_url(self):
        with modify_settings(INSTALLED_APPS={"remove": ["django.contrib.sites"]}):
            assert email_ids() == ["support_chat.W011"]
            with override_settings(SUPPORT_CHAT={"EMAIL_BASE_URL": "https://example.com"}):
                assert email_ids() == []

    @override_settings(ROOT_URLCONF="tests.urls_custom_mount")
    def test_w012_unsubscribe_page_not_routed(self):
        assert email_ids() == ["support_chat.W012"]

    def test_nothing_when_email_is_off(self):
        off = {"EMAIL_NOTIFICATIONS": {"enabled": False}}
        with (
            override_settings(TASKS=IMMEDIATE, SUPPORT_CHAT=off),
            modify_settings(INSTALLED_APPS={"remove": ["django.contrib.sites"]}),
        ):
            assert email_ids() == []

    def test_e010_no_tasks_framework(self, monkeypatch):
        # As on Django 5.2 without the django-tasks backport.
        from django_support_chat import compat

        monkeypatch.setattr(compat, "TASKS_AVAILABLE", False)
        assert email_ids() == ["support_chat.E010"]
