"""Liveness and readiness endpoints, plain Django, no authentication.

Probes do not log in, so nothing in the answers is sensitive: check names, ``ok``, the
time taken and a short failure reason (health.py keeps hosts and credentials out).
Nothing is throttled or cached: a readiness answer must describe this moment, and a
throttle would turn a prober's retries into failures. One request costs a ``SELECT 1``,
one channel-layer message and one Redis ``PING`` (docs/operations.md).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_safe

from .. import health


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
