"""``live`` and ``ready``; ``django_support_chat.urls`` mounts them at ``chat/health/``.
To choose the prefix yourself::

    path("health/", include("django_support_chat.ops.urls")),  # health/live, health/ready
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "support_chat_ops"

urlpatterns = [
    path("live", views.live, name="live"),
    path("ready", views.ready, name="ready"),
]
