"""Liveness and readiness endpoints, plain Django, no authentication.

Probes do not log in, so nothing in the answers is sensitive: check names, ``ok``, the
time taken and a short failure reason (health.py keeps hosts and credentials out).
Nothing is throttled or cached: a readiness answer must describe this moment, and a
throttle would turn a prober's retries into failures. One request costs a ``SELECT 1``,
one channel-layer message and one Redis ``PING`` (docs/operations.md).
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from .. import health, metrics
from ..conf import chat_settings


def _answer(data: dict[str, object], status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    add_never_cache_headers(response)  # Cache-Control: no-store (and friends)
    return response


@require_safe
async def live(request: HttpRequest) -> JsonResponse:
    """The process answers. Touches neither the database nor Redis: a liveness probe that
    fails with a dependency would restart healthy workers during an outage."""
    return _answer({"status": "ok"})


@require_safe
async def ready(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, 503 when any fails."""
    results = await health.run_checks()
    ok = all(result.ok for result in results.values())
    return _answer(
        {
            "status": "ok" if ok else "error",
            "checks": {name: result.as_dict() for name, result in results.items()},
        },
        status=200 if ok else 503,
    )


def _may_read_metrics(request: HttpRequest) -> bool:
    token = chat_settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    for network in chat_settings.METRICS_ALLOWED:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except (TypeError, ValueError):  # reported by check support_chat.E004
            continue
    return False


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. 404 (not 403: nothing to see here) without prometheus-client,
    when metrics are off or the client is not allowed. Sync: the email-notification gauge
    queries the database at scrape time."""
    if not metrics.AVAILABLE or not _may_read_metrics(request):
        raise Http404("No metrics here.")
    import prometheus_client
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker's files, summed by the collector; a fresh registry each time, as
        # prometheus-client's multiprocess mode requires.
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    # The database gauge in its own registry: registering it in the default one would
    # query the database in every exposition of the host's own metrics too.
    database = prometheus_client.CollectorRegistry(auto_describe=False)
    database.register(metrics.EmailNotificationCollector())
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(database)
    response = HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
    add_never_cache_headers(response)
    return response
