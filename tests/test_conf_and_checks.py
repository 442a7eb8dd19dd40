"""``SUPPORT_CHAT`` settings (merge, cache reset, dotted paths) and every system check id."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.checks import Error, Warning, run_checks
from django.test import modify_settings, override_settings

from django_support_chat import checks, roles, services
from django_support_chat.conf import DEFAULTS, chat_settings

from .factories import UserFactory
from .predicates import SUPPORT_DESK, support_desk

# Settings -------------------------------------------------------------------------------


class TestSettings:
    def test_defaults(self):
        assert chat_settings.MAX_MESSAGE_LENGTH == DEFAULTS["MAX_MESSAGE_LENGTH"] == 5000
        assert chat_settings.HISTORY_PAGE_SIZE == 50
        assert DEFAULTS["THROTTLE_RATES"] == chat_settings.THROTTLE_RATES

    def test_unknown_name_is_an_attribute_error(self):
        with pytest.raises(AttributeError, match="NOT_A_SETTING"):
            _ = chat_settings.NOT_A_SETTING

    def test_plain_value_replaces_default(self):
        with override_settings(SUPPORT_CHAT={"MAX_MESSAGE_LENGTH": 10}):
            assert chat_settings.MAX_MESSAGE_LENGTH == 10
            assert chat_settings.HISTORY_PAGE_SIZE == 50  # other keys keep their default

    def test_nested_dicts_merged_key_by_key(self):
        with override_settings(
            SUPPORT_CHAT={
                "THROTTLE_RATES": {"support_chat_send": "3/minute"},
                "WIDGET_TEXTS": {"title": "Help"},
            }
        ):
            assert {
                **DEFAULTS["THROTTLE_RATES"],
                "support_chat_send": "3/minute",
            } == chat_settings.THROTTLE_RATES
            assert chat_settings.THROTTLE_RATES["support_chat"] == "600/minute"
            texts = chat_settings.WIDGET_TEXTS
            assert texts["title"] == "Help"
            assert texts["send"] == DEFAULTS["WIDGET_TEXTS"]["send"]
            assert set(texts) == set(DEFAULTS["WIDGET_TEXTS"])
        # The merge does not leak into the defaults.
        assert DEFAULTS["THROTTLE_RATES"]["support_chat_send"] == "30/minute"

    def test_override_settings_resets_cache(self):
        assert chat_settings.MAX_MESSAGE_LENGTH == 5000  # cached now
        with override_settings(SUPPORT_CHAT={"MAX_MESSAGE_LENGTH": 7}):
            assert chat_settings.MAX_MESSAGE_LENGTH == 7
            with override_settings(SUPPORT_CHAT={"MAX_MESSAGE_LENGTH": 8}):
                assert chat_settings.MAX_MESSAGE_LENGTH == 8
            assert chat_settings.MAX_MESSAGE_LENGTH == 7
        assert chat_settings.MAX_MESSAGE_LENGTH == 5000

    def test_pytest_django_settings_fixture_resets_cache(self, settings):
        assert chat_settings.HISTORY_PAGE_SIZE == 50
        settings.SUPPORT_CHAT = {"HISTORY_PAGE_SIZE": 5}
        assert chat_settings.HISTORY_PAGE_SIZE == 5

    def test_missing_or_non_dict_setting_means_defaults(self, settings):
        del settings.SUPPORT_CHAT
        assert chat_settings.MAX_MESSAGE_LENGTH == 5000
        settings.SUPPORT_CHAT = ["not", "a", "dict"]
        assert chat_settings.MAX_MESSAGE_LENGTH == 5000


@pytest.mark.django_db
class TestStaffPredicate:
    def test_default_uses_is_staff_and_is_superuser(self):
        assert roles.uses_default_predicates()
        assert roles.is_staff(UserFactory(staff=True))
        assert roles.is_staff(UserFactory(is_superuser=True))  # admins are staff
        assert roles.is_admin(UserFactory(admin=True))
        assert not roles.is_admin(UserFactory(staff=True))
        assert not roles.is_staff(UserFactory(customer=True))
        assert not roles.is_staff(UserFactory(staff=True, is_active=False))
        assert not roles.is_staff(None)

    def test_anonymous_is_never_staff(self):
        from django.contrib.auth.models import AnonymousUser

        assert not roles.is_staff(AnonymousUser())
        assert not roles.is_admin(AnonymousUser())

    @override_settings(SUPPORT_CHAT={"STAFF_PREDICATE": SUPPORT_DESK})
    def test_dotted_path_honoured(self):
        desk = UserFactory(email="kim@support.example.com")  # not is_staff
        django_staff = UserFactory(staff=True, email="lee@example.com")
        assert not roles.uses_default_predicates()
        assert chat_settings.STAFF_PREDICATE is support_desk
        assert roles.is_staff(desk)
        assert not roles.is_staff(django_staff)
        assert desk in services.staff_users()
        assert django_staff not in services.staff_users()

    def test_callable_value_accepted(self, settings):
        settings.SUPPORT_CHAT = {"STAFF_PREDICATE": lambda user: user.username == "chosen"}
        assert roles.is_staff(UserFactory(username="chosen"))
        assert not roles.is_staff(UserFactory(staff=True))


# Checks ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _debug(settings):
    """The test runner forces DEBUG=False, which (rightly) warns about the in-memory layer
    (W001). Checks are run as in development unless a test says otherwise."""
    settings.DEBUG = True


LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


def support_chat_messages() -> list[Any]:
    """Every system-check message of this app, from the full check run."""
    return [m for m in run_checks(databases=[]) if (m.id or "").startswith("support_chat.")]


def ids() -> list[str]:
    return sorted(m.id for m in support_chat_messages())


class TestChecks:
    def test_test_settings_are_clean(self):
        assert support_chat_messages() == []

    @modify_settings(INSTALLED_APPS={"remove": ["channels", "daphne"]})
    def test_e001_channels_not_installed(self):
        [error] = support_chat_messages()
        assert error.id == "support_chat.E001"
        assert isinstance(error, Error)

    @modify_settings(INSTALLED_APPS={"remove": ["channels"]})
    def test_daphne_alone_brings_channels(self):
        assert "support_chat.E001" not in ids()

    def test_e002_no_channel_layers(self, settings):
        del settings.CHANNEL_LAYERS
        assert ids() == ["support_chat.E002"]

    @pytest.mark.parametrize("layers", [{}, {"other": {"BACKEND": "x"}}])
    def test_e002_no_default_layer(self, settings, layers):
        settings.CHANNEL_LAYERS = layers
        assert ids() == ["support_chat.E002"]

    @pytest.mark.parametrize("value", [None, ""])
    def test_e003_no_asgi_application(self, settings, value):
        settings.ASGI_APPLICATION = value
        assert ids() == ["support_chat.E003"]

    def test_e003_asgi_application_missing(self, settings):
        del settings.ASGI_APPLICATION
        assert ids() == ["support_chat.E003"]

    @modify_settings(INSTALLED_APPS={"remove": ["rest_framework"]})
    def test_e005_rest_framework_not_installed(self):
        assert ids() == ["support_chat.E005"]

    def test_w001_in_memory_layer_without_debug(self, settings):
        settings.DEBUG = False
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        [warning] = support_chat_messages()
        assert warning.id == "support_chat.W001"
        assert isinstance(warning, Warning)

    def test_w001_not_raised_with_debug_or_redis(self, settings):
        settings.DEBUG = True
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        assert ids() == []
        settings.DEBUG = False
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}
        }
        settings.CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": "redis://x"}}
        assert ids() == []

    def test_w005_per_process_cache_with_a_redis_layer(self, settings):
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}
        }
        settings.CACHES = {"default": {"BACKEND": LOCMEM}}
        [warning] = support_chat_messages()
        assert warning.id == "support_chat.W005"
        assert isinstance(warning, Warning)
        settings.CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": "redis://x"}}
        assert ids() == []

    def test_w002_unknown_key(self, settings):
        settings.SUPPORT_CHAT = {"MAX_MESAGE_LENGTH": 10}
        [warning] = support_chat_messages()
        assert warning.id == "support_chat.W002"
        assert isinstance(warning, Warning)
        assert "MAX_MESAGE_LENGTH" in warning.msg

    def test_every_valid_key_passes(self, settings):
        settings.SUPPORT_CHAT = dict(DEFAULTS)
        assert ids() == []

    @modify_settings(INSTALLED_APPS={"remove": ["django.contrib.staticfiles"]})
    def test_w003_staticfiles_not_installed(self):
        [warning] = support_chat_messages()
        assert warning.id == "support_chat.W003"
        assert isinstance(warning, Warning)
        assert "collectstatic" in warning.msg

    def test_w004_static_url_unset(self, settings):
        settings.STATIC_URL = None  # Django's default
        [warning] = support_chat_messages()
        assert warning.id == "support_chat.W004"
        assert isinstance(warning, Warning)
        assert [m.id for m in checks.check_static_files()] == ["support_chat.W004"]

    def test_static_checks_quiet_whatever_serves_the_files(self, settings):
        """Production set-ups that serve STATIC_ROOT from nginx or a CDN, or through
        WhiteNoise, all look the same from here: no warning."""
        settings.DEBUG = False
        for static_url in ("/static/", "https://cdn.example.com/static/"):
            settings.STATIC_URL = static_url
            assert checks.check_static_files() == []
            assert not {"support_chat.W003", "support_chat.W004"} & set(ids())


@contextmanager
def databases(**conn_max_age: Any):
    """DATABASES with one alias per keyword, each the default's settings with that
    CONN_MAX_AGE (``...``: the key left out). Only the checks read it: the connections
    keep theirs."""
    base = {k: v for k, v in django_settings.DATABASES["default"].items() if k != "CONN_MAX_AGE"}
    value = {
        alias: base if age is ... else {**base, "CONN_MAX_AGE": age}
        for alias, age in conn_max_age.items()
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Overriding setting DATABASES", UserWarning)
        with override_settings(DATABASES=value):
            yield


class TestPersistentConnectionsCheck:
    @pytest.mark.parametrize("age", [60, 1, None])
    def test_w006_persistent_connections_under_asgi(self, age):
        with databases(default=age):
            [warning] = support_chat_messages()
        assert warning.id == "support_chat.W006"
        assert isinstance(warning, Warning)
        assert "DATABASES['default']" in warning.msg
        assert ("None (unlimited)" if age is None else f"CONN_MAX_AGE = {age}") in warning.msg
        assert "CONN_MAX_AGE = 0" in warning.hint and 'OPTIONS["pool"]' in warning.hint

    def test_w006_names_each_persistent_alias(self):
        with databases(default=0, replica=300, reports=None, other=...):
            found = [m for m in support_chat_messages() if m.id == "support_chat.W006"]
        assert ["'replica'" in m.msg for m in found] == [True, False]
        assert "'reports'" in found[1].msg

    def test_w006_quiet_without_persistent_connections(self):
        with databases(default=0, other=...):  # ... = no key: Django's default, 0
            assert ids() == []

    def test_w006_quiet_without_asgi(self, settings):
        settings.ASGI_APPLICATION = None  # E003 says that; W006 only matters under ASGI
        with databases(default=60):
            assert checks.check_persistent_connections() == []
            assert ids() == ["support_chat.E003"]

    def test_w006_the_pool_settings_are_quiet(self):
        with databases(default=0):
            pooled = {
                **django_settings.DATABASES["default"],
                "OPTIONS": {"pool": {"min_size": 2, "max_size": 10, "timeout": 5}},
            }
            with override_settings(DATABASES={"default": pooled}):
                assert checks.check_persistent_connections() == []


E004_CASES = {
    "not a dict": ["MAX_MESSAGE_LENGTH", 10],
    "zero": {"MAX_MESSAGE_LENGTH": 0},
    "negative": {"HISTORY_PAGE_SIZE": -1},
    "string number": {"INBOX_PAGE_SIZE": "30"},
    "float": {"MAX_MESSAGE_LENGTH": 10.5},
    "bool": {"TYPING_TIMEOUT": True},
    "socket cap zero": {"WS_MAX_SOCKETS_PER_USER": 0},
    "database threads zero": {"WS_DATABASE_THREADS": 0},
    "database threads a string": {"WS_DATABASE_THREADS": "4"},
    "max lag zero": {"SEND_MAX_LAG": 0},
    "max lag a string": {"SEND_MAX_LAG": "0.2"},
    "bad frame rate": {"THROTTLE_RATES": {"support_chat_sync": "lots"}},
    "nested not a dict": {"WIDGET_TEXTS": "Support"},
    "rates not a dict": {"THROTTLE_RATES": ["30/minute"]},
    "rates a string": {"THROTTLE_RATES": "30/minute"},
    "bad rate": {"THROTTLE_RATES": {"support_chat_send": "30 per minute"}},
    "bad rate unit": {"THROTTLE_RATES": {"support_chat": "30/fortnight"}},
    "rate not a string": {"THROTTLE_RATES": {"support_chat": 30}},
    "predicate not importable": {"STAFF_PREDICATE": "no.such.module.predicate"},
    "predicate path not callable": {"ADMIN_PREDICATE": "tests.predicates.NOT_CALLABLE"},
    "predicate not callable": {"STAFF_PREDICATE": 42},
    "ttl below two heartbeats": {"PRESENCE_TTL": 15, "HEARTBEAT_INTERVAL": 10},
    "ttl below two default heartbeats": {"PRESENCE_TTL": 19},
}


class TestE004:
    @pytest.mark.parametrize("value", E004_CASES.values(), ids=E004_CASES.keys())
    def test_bad_value(self, settings, value):
        settings.SUPPORT_CHAT = value
        messages = support_chat_messages()
        assert [m.id for m in messages] == ["support_chat.E004"], messages
        assert isinstance(messages[0], Error)

    @pytest.mark.parametrize(
        "value",
        [
            {"THROTTLE_RATES": {"support_chat_send": None}},  # None disables a scope
            {"THROTTLE_RATES": {"support_chat": "5/s", "support_chat_send": "1/day"}},
            {"STAFF_PREDICATE": SUPPORT_DESK},
            {"STAFF_PREDICATE": support_desk},
            {"PRESENCE_TTL": 20, "HEARTBEAT_INTERVAL": 10},
        ],
    )
    def test_good_value(self, settings, value):
        settings.SUPPORT_CHAT = value
        assert ids() == []

    def test_several_problems_reported_together(self, settings):
        settings.SUPPORT_CHAT = {"MAX_MESSAGE_LENGTH": 0, "HISTORY_PAGE_SIZE": "x", "X": 1}
        assert ids() == ["support_chat.E004", "support_chat.E004", "support_chat.W002"]

    def test_check_function_directly(self, settings):
        settings.SUPPORT_CHAT = {"MAX_MESSAGE_LENGTH": 0}
        [error] = checks.check_settings()
        assert error.id == "support_chat.E004"
        assert "MAX_MESSAGE_LENGTH" in error.msg
