"""The host's own REST API, documented by its own drf-spectacular schema."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class UserSerializer(serializers.ModelSerializer):
    """The signed-in member (OpenAPI component ``User``)."""

    class Meta:
        model = get_user_model()
        fields = ["id", "email", "name", "is_staff"]
        read_only_fields = fields


class MeView(APIView):
    @extend_schema(responses=UserSerializer, operation_id="me_retrieve")
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)
