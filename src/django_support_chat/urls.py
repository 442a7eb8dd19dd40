"""Everything in one include, placed before Django admin's own ``admin/`` route::

    path("", include("django_support_chat.urls")),
    path("admin/", admin.site.urls),

This serves the REST API at ``api/chat/``, the staff inbox at ``admin/chat/`` and the
pages the emails link to (unsubscribe) at ``chat/email/`` and the health checks at
``chat/health/live`` and ``chat/health/ready``, and the Prometheus metrics at
``chat/metrics``. For other prefixes include the parts
yourself: ``django_support_chat.api.urls``, ``django_support_chat.inbox.urls``,
``django_support_chat.mail.urls``, ``django_support_chat.ops.urls`` and
``django_support_chat.ops.metrics_urls``.
"""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("api/chat/", include("django_support_chat.api.urls")),
    path("admin/chat/", include("django_support_chat.inbox.urls")),
    path("chat/email/", include("django_support_chat.mail.urls")),
    path("chat/health/", include("django_support_chat.ops.urls")),
    path("chat/", include("django_support_chat.ops.metrics_urls")),  # chat/metrics
]
