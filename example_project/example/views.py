from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "example/home.html")


def pricing(request: HttpRequest) -> HttpResponse:
    return render(request, "example/pricing.html")


@login_required
def account(request: HttpRequest) -> HttpResponse:
    return render(request, "example/account.html")
