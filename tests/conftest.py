"""Shared fixtures: users and API clients per role, a fresh cache, a real channel layer."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from rest_framework.test import APIClient

from .factories import ConversationFactory, UserFactory

API = "/api/chat/"

# tests/foreign_host is a second host project with its own AUTH_USER_MODEL: its tests run in
# a pytest process of their own (DJANGO_SETTINGS_MODULE=tests.foreign_host.settings, see
# scripts/test.sh) and are not even collected in this one (a skip would count as a skip).
if os.environ.get("DJANGO_SETTINGS_MODULE") != "tests.foreign_host.settings":
    collect_ignore = ["foreign_host"]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle state lives in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_pushback(monkeypatch):
    """Each test starts with a send gate and a delivery-lag reading of its own: refusals
    of an earlier test would lengthen this one's retry_after (SendGate.backoff)."""
    from django_support_chat import sendqueue

    monkeypatch.setattr(sendqueue, "gate", sendqueue.SendGate())
    monkeypatch.setattr(sendqueue, "delivery_lag", sendqueue.DeliveryLag())


# Users ------------------------------------------------------------------------------


@pytest.fixture
def customer(db):
    """Customer A: owns ``conversation``."""
    return UserFactory(customer=True, username="alice", first_name="Alice", last_name="Archer")


@pytest.fixture
def other_customer(db):
    """Customer B: a customer who must never see A's conversation."""
    return UserFactory(customer=True, username="bob", first_name="Bob", last_name="Baker")


@pytest.fixture
def staff(db):
    return UserFactory(staff=True, username="sam", first_name="Sam", last_name="Support")


@pytest.fixture
def admin(db):
    return UserFactory(admin=True, username="ada", first_name="Ada", last_name="Admin")


@pytest.fixture
def conversation(customer):
    """Customer A's conversation, open, no messages."""
    return ConversationFactory(customer=customer)


# API clients (the real session auth stack: force_login creates a session cookie) -----


def _client_for(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def anon_api(db):
    return _client_for(None)


@pytest.fixture
def customer_api(customer):
    return _client_for(customer)


@pytest.fixture
def other_api(other_customer):
    return _client_for(other_customer)


@pytest.fixture
def staff_api(staff):
    return _client_for(staff)


@pytest.fixture
def admin_api(admin):
    return _client_for(admin)


@pytest.fixture
def api_for(anon_api, customer_api, other_api, staff_api, admin_api):
    """The API client of a role name: anonymous, owner, other, staff, admin."""
    clients = {
        "anonymous": anon_api,
        "owner": customer_api,
        "other": other_api,
        "staff": staff_api,
        "admin": admin_api,
    }
    return clients.__getitem__


# Channel layer ------------------------------------------------------------------------


class LayerProbe:
    """A real in-memory channel layer with helpers to listen on groups from sync tests."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def subscribe(self, group: str) -> str:
        async def _subscribe() -> str:
            channel = await self.layer.new_channel()
            await self.layer.group_add(group, channel)
            return channel

        return async_to_sync(_subscribe)()

    def drain(self, channel: str, timeout: float = 0.05) -> list[dict[str, Any]]:
        """Every event waiting on ``channel`` (the envelopes, not the layer messages)."""

        async def _drain() -> list[dict[str, Any]]:
            received = []
            while True:
                try:
                    message = await asyncio.wait_for(self.layer.receive(channel), timeout)
                except asyncio.TimeoutError:
                    return received
                received.append(json.loads(message["text"]))

        return async_to_sync(_drain)()


@pytest.fixture
def channel_layer(settings):
    """A fresh InMemoryChannelLayer (channels drops cached layers on setting_changed)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return LayerProbe(get_channel_layer())
