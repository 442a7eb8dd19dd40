"""The host's own pages: a home page, an account page and a view that leaves a flash
message (Django's messages framework) and redirects."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

FLASH_TEXT = "Your preferences were saved."


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "host/home.html")


@login_required
def account(request: HttpRequest) -> HttpResponse:
    return render(request, "host/account.html")


@login_required
def save_preferences(request: HttpRequest) -> HttpResponse:
    """Pretend to save, flash a message and go back to ``?next=`` (or the account page)."""
    messages.success(request, FLASH_TEXT)
    target = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "account"
    return redirect(target)
