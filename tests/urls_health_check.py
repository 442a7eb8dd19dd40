"""A host's URLconf with a django-health-check endpoint that lists the chat's checks
(tests/test_health.py). Its defaults that need the outside world (DNS, Mail) are left out."""

from django.urls import include, path
from health_check.views import HealthCheckView

from django_support_chat.ops.health_check import CHECKS

urlpatterns = [
    path("ht/", HealthCheckView.as_view(checks=["health_check.checks.Database", *CHECKS])),
    path("", include("django_support_chat.urls")),
]
