"""One-click unsubscribe (RFC 8058) from the emails about unread chat messages.

The signed token in the URL is the credential (no login): GET shows a confirmation page
with a button, because mail scanners fetch links; POST (what mail clients send for
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``) turns the user's email
preference off. A forged or damaged token gets a 400 page and changes nothing.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .. import notifications, services

TEMPLATE = "support_chat/mail/unsubscribe.html"


def _page(request: HttpRequest, state: str, status: int = 200) -> HttpResponse:
    response = render(request, TEMPLATE, {"state": state}, status=status)
    # A per-user page: never cached by a proxy, never indexed.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


@csrf_exempt  # the signed token is the credential; mail clients POST without a cookie
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    user = notifications.user_from_token(token)
    if user is None:
        return _page(request, "invalid", status=400)
    if request.method == "POST":
        services.update_notification_preferences(user, email=False)
        return _page(request, "done")
    return _page(request, "confirm")
