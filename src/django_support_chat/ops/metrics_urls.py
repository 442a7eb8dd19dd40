"""``metrics`` (Prometheus); ``django_support_chat.urls`` mounts it at ``chat/``. To choose
the prefix yourself::

    path("ops/", include("django_support_chat.ops.metrics_urls")),  # ops/metrics
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "support_chat_metrics"

urlpatterns = [
    path("metrics", views.metrics_view, name="metrics"),
]
