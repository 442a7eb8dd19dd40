"""A host site with its own drf-spectacular API and schema, and the chat installed the
documented way (``tests/test_schema.py``; run with ``DEFAULT_SCHEMA_CLASS`` set to
drf-spectacular's AutoSchema, as such hosts have it).

The host's own components are named like the chat's would be without their prefix: a
``User`` (``UserSerializer``) and a ``status`` choice field (``StatusEnum``).
"""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

# SPECTACULAR_SETTINGS variants (``spectacular --custom-settings tests.urls_host_schema.X``).
WITHOUT_CHAT = {"PREPROCESSING_HOOKS": ["django_support_chat.api.schema.exclude_chat_endpoints"]}
SPLIT_REQUEST = {"COMPONENT_SPLIT_REQUEST": True}


class UserSerializer(serializers.Serializer):
    email = serializers.EmailField(read_only=True)
    name = serializers.CharField(read_only=True)


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    status = serializers.ChoiceField(choices=["pending", "shipped"], read_only=True)


class MeView(GenericAPIView):
    serializer_class = UserSerializer

    def get(self, request: Request) -> Response:
        return Response({"email": request.user.email, "name": request.user.get_full_name()})


class OrderView(GenericAPIView):
    serializer_class = OrderSerializer

    def get(self, request: Request, pk: int) -> Response:
        return Response({"id": pk, "status": "pending"})


urlpatterns = [
    path("api/v1/me/", MeView.as_view(), name="me"),
    path("api/v1/orders/<int:pk>/", OrderView.as_view(), name="order"),
    path("api/schema/", SpectacularAPIView.as_view(), name="host-schema"),
    path(
        "api/schema-without-chat/",
        SpectacularAPIView.as_view(custom_settings=WITHOUT_CHAT),
        name="host-schema-without-chat",
    ),
    path("", include("django_support_chat.urls")),
]
