"""The example project's URLs plus a host view that sets a flash message (Django's messages
framework) and redirects to ``?next=``, for the inbox-in-a-host-layout tests
(``tests/test_inbox_views.py``)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path
from example.urls import urlpatterns as example_urlpatterns

FLASH_TEXT = "Your preferences were saved."


def flash(request: HttpRequest) -> HttpResponseRedirect:
    messages.success(request, FLASH_TEXT)
    return HttpResponseRedirect(request.GET.get("next", "/"))


urlpatterns = [path("host/flash/", flash), *example_urlpatterns]
