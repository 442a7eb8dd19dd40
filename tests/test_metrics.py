"""chat/metrics: who may read it, what it serves (Prometheus text), and the counters of
HTTP requests (the WebSocket ones: tests/realtime/test_metrics.py; two workers:
tests/realtime/test_metrics_multiworker.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_support_chat.models import EmailNotification

from .factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/chat/metrics"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: Client | None = None, **extra: Any) -> dict[Any, float]:
    response = (client or Client()).get(URL, **extra)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def value(scraped: dict[Any, float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def test_served_to_localhost_by_default():
    scraped = scrape()
    names = {name for name, _ in scraped}
    assert "support_chat_email_notifications" in names
    assert Client().get(URL)["Cache-Control"].startswith("max-age=0")


def test_other_addresses_get_404():
    assert Client(REMOTE_ADDR="203.0.113.7").get(URL).status_code == 404
    assert Client(REMOTE_ADDR="not an address").get(URL).status_code == 404


@override_settings(SUPPORT_CHAT={"METRICS_ALLOWED": ["203.0.113.0/24"]})
def test_allowed_networks_are_a_setting():
    assert Client(REMOTE_ADDR="203.0.113.7").get(URL).status_code == 200
    assert Client().get(URL).status_code == 404  # 127.0.0.1 is no longer listed


@override_settings(SUPPORT_CHAT={"METRICS_ALLOWED": [], "METRICS_TOKEN": "s3cret"})
def test_bearer_token_from_anywhere():
    far = Client(REMOTE_ADDR="203.0.113.7")
    assert far.get(URL).status_code == 404
    assert far.get(URL, headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert far.get(URL, headers={"Authorization": "Bearer s3cret"}).status_code == 200


@override_settings(SUPPORT_CHAT={"METRICS_ALLOWED": []})
def test_off_without_networks_or_token():
    assert Client().get(URL).status_code == 404


def test_only_get_and_head():
    assert Client().post(URL).status_code == 405


def test_email_notifications_gauge_counts_the_rows(customer, conversation, staff):
    before = scrape()
    status = EmailNotification.Status
    recipients = [(staff, "staff"), (customer, "user"), (UserFactory(staff=True), "staff")]
    states = (status.PENDING, status.PENDING, status.SENT)
    for (recipient, side), state in zip(recipients, states, strict=True):
        EmailNotification.objects.create(
            conversation=conversation,
            recipient=recipient,
            recipient_side=side,
            status=state,
            due_at=timezone.now(),
        )
    after = scrape()
    gauge = "support_chat_email_notifications"
    for state, added in ((status.PENDING, 2), (status.SENT, 1), (status.SKIPPED, 0)):
        assert value(after, gauge, status=state) - value(before, gauge, status=state) == added
    pending = EmailNotification.objects.filter(status=status.PENDING).count()
    assert value(after, gauge, status="pending") == pending


@pytest.mark.django_db(transaction=True)  # counted on commit
def test_message_sent_over_http_counts_its_side(customer_api, staff_api, conversation):
    before = scrape()
    url = f"/api/chat/conversations/{conversation.pk}/messages/"
    payload = {"text": "hi", "client_id": str(uuid.uuid4())}
    assert customer_api.post(url, payload, format="json").status_code == 201
    # A resend with the same client_id stores nothing and counts nothing.
    assert customer_api.post(url, payload, format="json").status_code in (200, 201)
    staff_payload = {"text": "hello", "client_id": str(uuid.uuid4())}
    assert staff_api.post(url, staff_payload, format="json").status_code == 201
    after = scrape()
    stored = "support_chat_messages_stored_total"
    assert value(after, stored, side="user") - value(before, stored, side="user") == 1
    assert value(after, stored, side="staff") - value(before, stored, side="staff") == 1


@override_settings(SUPPORT_CHAT={"THROTTLE_RATES": {"support_chat_send": "1/minute"}})
def test_throttled_request_is_counted(customer_api, conversation):
    before = scrape()
    url = f"/api/chat/conversations/{conversation.pk}/messages/"
    for status in (201, 429, 429):
        payload = {"text": "hi", "client_id": str(uuid.uuid4())}
        assert customer_api.post(url, payload, format="json").status_code == status
    after = scrape()
    name, labels = (
        "support_chat_throttled_total",
        {"interface": "http", "scope": "support_chat_send"},
    )
    assert value(after, name, **labels) - value(before, name, **labels) == 2


def test_without_prometheus_client_the_chat_runs_and_the_endpoint_is_404():
    """A fresh interpreter where ``import prometheus_client`` fails (the extra missing):
    every metric is a no-op with the same methods, and chat/metrics answers 404."""
    import os
    import subprocess
    import sys

    script = """
import sys
sys.modules["prometheus_client"] = None  # import prometheus_client raises ImportError
import django
django.setup()
from django_support_chat import metrics
assert not metrics.AVAILABLE
metrics.MESSAGES_STORED.labels(side="user").inc()
metrics.OPEN_SOCKETS.labels(route="customer").dec()
metrics.observe_delivery("customer", 0.0)
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
print(Client().get("/chat/metrics").status_code)
"""
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "example_project")]),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "404"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"METRICS_ALLOWED": "127.0.0.1/32"}, "must be a list of IP networks"),
        ({"METRICS_ALLOWED": ["10.0.0.0/8", "intranet"]}, "'intranet', which is not an IP"),
        ({"METRICS_ALLOWED": [None]}, "None, which is not an IP network"),
        ({"METRICS_TOKEN": ""}, "must be a non-empty string or None"),
        ({"METRICS_TOKEN": 1234}, "must be a non-empty string or None"),
    ],
)
def test_bad_metrics_settings_are_reported_by_e004(settings, values, problem):
    from django.core.checks import run_checks

    settings.SUPPORT_CHAT = values
    messages = [m for m in run_checks(databases=[]) if m.id == "support_chat.E004"]
    assert any(problem in m.msg for m in messages), [m.msg for m in messages]


def test_good_metrics_settings_pass_the_checks(settings):
    from django.core.checks import run_checks

    settings.SUPPORT_CHAT = {"METRICS_ALLOWED": ["10.0.0.0/8", "::1"], "METRICS_TOKEN": "t"}
    assert not [m for m in run_checks(databases=[]) if m.id == "support_chat.E004"]


@override_settings(SUPPORT_CHAT={"METRICS_ALLOWED": ["intranet", "127.0.0.1/32"]})
def test_a_bad_network_lets_nobody_in_and_breaks_nothing():
    assert Client(REMOTE_ADDR="10.1.2.3").get(URL).status_code == 404  # not a 500
    assert Client().get(URL).status_code == 200  # the good entry still counts
