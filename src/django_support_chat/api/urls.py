"""The REST API with its OpenAPI schema, namespace ``support_chat``.

Mount it yourself to choose the prefix: ``path("api/chat/", include("django_support_chat.api.urls"))``.
"""

from __future__ import annotations

from django.urls import path

from . import views
from .routes import urlpatterns as endpoints

app_name = "support_chat"

urlpatterns = [
    *endpoints,
    path("schema/", views.SchemaView.as_view(), name="schema"),
]
