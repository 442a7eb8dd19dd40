"""Mount with ``path("api/chat/", include("django_support_chat.urls"))``."""

from __future__ import annotations

from django.urls import path

from .api import views
from .api.urls import urlpatterns as api_urlpatterns

app_name = "support_chat"

urlpatterns = [
    *api_urlpatterns,
    path("schema/", views.SchemaView.as_view(), name="schema"),
]
