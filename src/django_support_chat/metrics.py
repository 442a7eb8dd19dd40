"""Prometheus metrics, with the optional ``prometheus-client`` (``pip install
"django-support-chat[metrics]"``); without it every metric here is a no-op stand-in with
the same methods, so call sites need no guard.

The counters sit beside the log lines of the same events (``event=`` keys). Labels are
low-cardinality only: side, route, close code (clamped to known codes), scope, event type,
status — never user or conversation ids. Several worker processes: set
``PROMETHEUS_MULTIPROC_DIR`` (docs/operations.md, "Metrics"); the open-sockets gauge then
sums the live workers (``livesum``).

Email notifications are a gauge read from the database at scrape time
(:class:`EmailNotificationCollector`): the rows are the truth shared by every process,
while a counter in the process that happens to send would miss rows written or changed by
the task worker (another process, maybe without a metrics directory).
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterator
from typing import Any

try:
    import prometheus_client
except ImportError:  # the extra is not installed: no-op metrics
    prometheus_client = None  # type: ignore[assignment]

AVAILABLE = prometheus_client is not None

if AVAILABLE and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A worker that exits takes its open sockets out of the livesum gauge (one killed
    # with SIGKILL stays counted until the directory is cleared on the next start).
    from prometheus_client import multiprocess as _multiprocess

    # The pid at exit, not at import: a server that imports the app before forking its
    # workers (gunicorn --preload) would otherwise name the parent.
    atexit.register(lambda: _multiprocess.mark_process_dead(os.getpid()))

# Close codes reported as themselves; any other (clients choose theirs) is "other", so a
# client cannot create series at will.
KNOWN_CLOSE_CODES = frozenset(
    {1000, 1001, 1005, 1006, 1011, 1012}  # standard ones a server or browser sends
    | {4001, 4401, 4403, 4404, 4408, 4429, 4430}  # the consumers' (realtime/consumers.py)
)

# Server-side delivery latency: publish (after the commit) -> frame handed to the socket.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Noop:
    """Stands in for a counter, gauge or histogram (and its ``labels()`` children)."""

    def labels(self, *args: Any, **kwargs: Any) -> _Noop:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


def _counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
    if prometheus_client is None:
        return _Noop()
    return prometheus_client.Counter(name, documentation, labels)


MESSAGES_STORED = _counter(
    "support_chat_messages_stored_total",
    "Chat messages stored (committed), by the sender's side.",
    ("side",),
)
EVENTS_PUBLISHED = _counter(
    "support_chat_events_published_total",
    "Events sent to the channel layer (one per event, whatever the number of groups).",
    ("type",),
)
DELIVERIES = _counter(
    "support_chat_deliveries_total",
    "Published events sent to a socket, by the socket's route.",
    ("route",),
)
CONNECTS = _counter(
    "support_chat_ws_connects_total",
    "WebSocket connections accepted, by route.",
    ("route",),
)
REFUSED = _counter(
    "support_chat_ws_refused_total",
    "WebSocket connections refused (closed with a 44xx code right after the handshake).",
    ("route", "code"),
)
CLOSES = _counter(
    "support_chat_ws_closes_total",
    "Accepted WebSocket connections closed, by route and close code (server's or client's).",
    ("route", "code"),
)
THROTTLED = _counter(
    "support_chat_throttled_total",
    "Requests (interface=http) and frames (interface=ws) refused by a rate limit.",
    ("interface", "scope"),
)
SENDS_REJECTED = _counter(
    "support_chat_sends_rejected_total",
    "Sends refused at once because SEND_QUEUE_LIMIT sends were pending (overloaded, 503).",
    ("interface",),
)
DB_UNAVAILABLE = _counter(
    "support_chat_db_unavailable_total",
    "Requests (http, inbox) and frames (ws) answered unavailable: no database connection.",
    ("interface",),
)
LAYER_ERRORS = _counter(
    "support_chat_channel_layer_errors_total",
    "Channel-layer failures: a publish that failed, or a probe that did not come back.",
    ("operation",),
)
LAYER_RECONNECTS = _counter(
    "support_chat_channel_layer_reconnects_total",
    "Subscription connections of the channel layer established again (events may be lost).",
)
LAYER_RECOVERIES = _counter(
    "support_chat_channel_layer_recoveries_total",
    "Times the channel layer delivered again after trouble (the sockets were told to resync).",
)
LAYER_GAVE_UP = _counter(
    "support_chat_channel_layer_gave_up_total",
    "Times a worker gave up on the channel layer and closed its sockets with 1012.",
)

if prometheus_client is None:
    OPEN_SOCKETS: Any = _Noop()
    DELIVERY_LATENCY: Any = _Noop()
else:
    OPEN_SOCKETS = prometheus_client.Gauge(
        "support_chat_ws_open_sockets",
        "WebSocket connections open now, by route (summed over the live workers).",
        ("route",),
        multiprocess_mode="livesum",
    )
    DELIVERY_LATENCY = prometheus_client.Histogram(
        "support_chat_delivery_latency_seconds",
        "Seconds from publishing an event (after its commit) to sending it to a socket.",
        ("route",),
        buckets=LATENCY_BUCKETS,
    )


def close_code(code: int | None) -> str:
    """The ``code`` label for a close code: known codes as themselves, else ``other``."""
    if code is None:
        return "none"
    return str(code) if code in KNOWN_CLOSE_CODES else "other"


def observe_delivery(route: str, published: Any) -> None:
    """Count one event sent to a socket of ``route``; ``published`` is the ``time.time()``
    stamp the publisher put in the layer message (wall clock: it crosses processes)."""
    DELIVERIES.labels(route=route).inc()
    if isinstance(published, (int, float)):
        DELIVERY_LATENCY.labels(route=route).observe(max(0.0, time.time() - published))


class EmailNotificationCollector:
    """``support_chat_email_notifications{status}``: EmailNotification rows by status,
    counted in the database when scraped (one ``GROUP BY`` query)."""

    def collect(self) -> Iterator[Any]:
        from django.db.models import Count
        from prometheus_client.core import GaugeMetricFamily

        from .models import EmailNotification

        family = GaugeMetricFamily(
            "support_chat_email_notifications",
            "Email notifications by status (pending: scheduled, not yet sent or skipped).",
            labels=["status"],
        )
        counts = dict.fromkeys(EmailNotification.Status.values, 0)
        for row in EmailNotification.objects.values("status").annotate(n=Count("pk")):
            counts[row["status"]] = row["n"]
        for status, n in sorted(counts.items()):
            family.add_metric([status], n)
        yield family
