"""The benchmark's URLconf: the example project's URLs as they are, plus the REST floor.

The floor is a bare DRF view over the chat's own tables (issue #14 item 2): no
authentication, no permission check, no throttle, no HTML rendering, no receipts, no
events. ``GET bench/floor/conversations/<pk>/messages/`` returns the same rows as the
plugin's newest history page (the ``HISTORY_PAGE_SIZE`` newest messages of the
conversation, newest first) through a plain ``ModelSerializer``; ``POST`` stores one message
with a plain create (the next ``seq`` read with the conversation's customer in one query,
then the INSERT) and answers 201 with the row. The harness POSTs to the floor only in
conversations that nobody else writes to, one request at a time per conversation, so the
unlocked ``seq`` is safe there; it is not a pattern for real code.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max
from django.urls import path
from example.urls import urlpatterns as site_urlpatterns
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_support_chat.conf import chat_settings
from django_support_chat.models import Conversation, Message

FIELDS = ["id", "seq", "conversation", "sender", "sender_side", "text", "client_id", "created_at"]


class FloorMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = FIELDS
        read_only_fields = FIELDS


class FloorCreateSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=5000)
    client_id = serializers.UUIDField()


class FloorMessages(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes = [JSONParser]

    def get(self, request: Request, pk: int) -> Response:
        rows = Message.objects.filter(conversation_id=pk).order_by("-id")[
            : chat_settings.HISTORY_PAGE_SIZE
        ]
        return Response({"results": FloorMessageSerializer(rows, many=True).data})

    def post(self, request: Request, pk: int) -> Response:
        incoming = FloorCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        conv = (
            Conversation.objects.filter(pk=pk)
            .annotate(top=Max("messages__seq"))
            .values("customer_id", "top")
            .get()
        )
        message = Message.objects.create(
            conversation_id=pk,
            sender_id=conv["customer_id"],
            sender_side="user",
            text=incoming.validated_data["text"],
            client_id=incoming.validated_data["client_id"],
            seq=(conv["top"] or 0) + 1,
        )
        return Response(FloorMessageSerializer(message).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("bench/floor/conversations/<int:pk>/messages/", FloorMessages.as_view()),
    *site_urlpatterns,
]
