"""REST API views. Each one checks access and then calls exactly one service."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.db.models import QuerySet, Sum
from django.http import Http404
from django.http.request import RawPostDataException
from django.utils.translation import gettext as _
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import set_rollback

from .. import roles, sendqueue, services, tokens
from ..conf import chat_settings
from ..exceptions import ChatError
from ..models import Conversation, Message, Notification, NotificationPreference, Side
from ..queries import filter_inbox
from .metadata import ChatMetadata
from .pagination import (
    CatchUpBySeqPagination,
    CatchUpPagination,
    ConversationPagination,
    HistoryPagination,
    NotificationPagination,
)
from .permissions import IsSupportStaff
from .schema import CHAT_SCHEMA_SETTINGS, ChatAutoSchema, document, errors
from .serializers import (
    AssignSerializer,
    ConversationPageSerializer,
    ConversationSerializer,
    HistoryQuerySerializer,
    InboxQuerySerializer,
    MessageCreateSerializer,
    MessagePageSerializer,
    MessageSerializer,
    NotificationPageSerializer,
    NotificationPreferencesSerializer,
    NotificationPreferencesUpdateSerializer,
    NotificationReadResultSerializer,
    NotificationReadSerializer,
    NotificationSerializer,
    NotificationUnreadCountSerializer,
    ReadSerializer,
    UnreadCountSerializer,
    WebSocketTokenSerializer,
)
from .throttles import DEFAULT_SCOPE, SEND_SCOPE, ChatRateThrottle

STAFF_ONLY = "Not signed in, or not staff."


class _ServiceError(exceptions.APIException):
    def __init__(self, error: ChatError) -> None:
        self.status_code = error.status_code
        super().__init__(detail=error.message, code=error.code)


class ChatAPIView(GenericAPIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    throttle_classes = [ChatRateThrottle]
    throttle_scope = DEFAULT_SCOPE
    metadata_class = ChatMetadata  # OPTIONS: never a 500 (api/metadata.py)
    schema = ChatAutoSchema()

    def get_authenticators(self) -> list[Any]:
        # The site's DRF authentication classes, plus the session: the widget and the
        # inbox sign in with the session cookie even on a token- or JWT-only API.
        classes = list(self.authentication_classes)
        if SessionAuthentication not in classes:
            classes.append(SessionAuthentication)
        return [auth() for auth in classes]

    def handle_exception(self, exc: Exception) -> Response:
        # Pushback and a database that gives no connection (pool timeout, "too many
        # clients"): 503 with Retry-After, never a 500 (docs/protocol.md, "Slowing down").
        if isinstance(exc, sendqueue.Overloaded):
            return self.unavailable_response(sendqueue.OVERLOADED, str(exc), exc.retry_after)
        if isinstance(exc, OperationalError):
            sendqueue.note_rejected("http", sendqueue.UNAVAILABLE, method=self.request.method)
            return self.unavailable_response(
                sendqueue.UNAVAILABLE,
                _("The service is unavailable; try again shortly."),
                sendqueue.retry_after(),
            )
        # Services raise Django's ValidationError and ChatError; answer them as 4xx.
        if isinstance(exc, DjangoValidationError):
            detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
            exc = exceptions.ValidationError(detail=detail)
        elif isinstance(exc, ChatError):
            exc = _ServiceError(exc)
        return super().handle_exception(exc)

    def unavailable_response(self, code: str, detail: str, retry_after: float) -> Response:
        set_rollback()
        response = Response(
            {"detail": detail, "code": code, "retry_after": retry_after},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": sendqueue.retry_after_header(retry_after)},
        )
        response.exception = True
        return response

    def side(self, conversation: Conversation | None = None) -> Side:
        if conversation is not None and conversation.customer_id == self.request.user.pk:
            return Side.USER
        return Side.STAFF if roles.is_staff(self.request.user) else Side.USER

    def get_conversation(self, *, slim: bool = False) -> Conversation:
        """The conversation in the URL, if the user may see it; 404 otherwise. ``slim``:
        its id and customer only (the access check), for a service that locks and reads
        the row itself and refreshes the instance (a send)."""
        queryset = Conversation.objects.filter(pk=self.kwargs["pk"])
        if slim:
            queryset = queryset.only("id", "customer_id")
        else:
            queryset = queryset.select_related("customer", "assigned_to", "last_message")
        conversation = queryset.first()
        if conversation is None or not roles.can_access_conversation(
            self.request.user, conversation
        ):
            raise Http404
        return conversation

    def conversation_response(self, conversation: Conversation, **kwargs: Any) -> Response:
        data = ConversationSerializer(conversation, context={"side": self.side(conversation)}).data
        return Response(data, **kwargs)


class ConversationListView(ChatAPIView):
    """The user's own conversations, newest first; the first one is created on demand."""

    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination

    def get_queryset(self) -> QuerySet[Conversation]:
        return Conversation.objects.for_customer(self.request.user).select_related(
            "customer", "assigned_to", "last_message"
        )

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "side": Side.USER}

    @document(
        operation_id="conversations_list",
        paginated=True,
        responses={200: ConversationPageSerializer, **errors(404)},
    )
    def get(self, request: Request) -> Response:
        queryset = self.get_queryset()
        if not queryset.exists():
            services.get_or_start_conversation(request.user)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ConversationDetailView(ChatAPIView):
    serializer_class = ConversationSerializer

    @document(
        operation_id="conversations_retrieve",
        responses={200: ConversationSerializer, **errors(404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        return self.conversation_response(self.get_conversation())


def _client_id(request: Request) -> Any:
    """The ``client_id`` of a send, read from the raw body only when the gate would refuse
    it (a resend is owed a place): before authentication and DRF's parsing, whose errors
    keep their usual answers."""
    try:
        body = json.loads(request._request.body)
    except (ValueError, RawPostDataException, SuspiciousOperation):
        return None
    return body.get("client_id") if isinstance(body, dict) else None


class MessageListView(ChatAPIView):
    """History (newest first, ``?cursor=`` for older pages; ``?after=<id>`` to catch up)
    and sending (idempotent on ``client_id``)."""

    serializer_class = MessageSerializer

    send_slot: sendqueue.Slot | None = None

    @property
    def throttle_scope(self) -> str:  # type: ignore[override]
        return SEND_SCOPE if self.request.method == "POST" else DEFAULT_SCOPE

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # A send holds a slot from before its first query (the session) to its response;
        # with SEND_QUEUE_LIMIT of them in progress in this process, 503 at once.
        if request.method == "POST":
            self.send_slot = sendqueue.gate.acquire("http", client_id=lambda: _client_id(request))
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if self.send_slot is not None:
            self.send_slot.release()
            self.send_slot = None
        return super().finalize_response(request, response, *args, **kwargs)

    @document(
        operation_id="conversations_messages_list",
        parameters=[HistoryQuerySerializer],
        paginated=True,
        responses={
            200: MessagePageSerializer,
            **errors(400, 404, e400="`after` or `after_seq` is not an integer ≥ 0."),
        },
        description="History, newest first (`next` leads to older messages), or with "
        "`after_seq` (or `after`) the messages after that sequence number (or id), oldest "
        "first (`next` leads forward and is null once the client is up to date).",
    )
    def get(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation()
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages = Message.objects.filter(conversation=conversation).select_related("sender")
        if "after_seq" in query.validated_data:
            messages = messages.filter(seq__gt=query.validated_data["after_seq"])
            self.pagination_class = CatchUpBySeqPagination
        elif "after" in query.validated_data:
            messages = messages.filter(id__gt=query.validated_data["after"])
            self.pagination_class = CatchUpPagination
        else:
            self.pagination_class = HistoryPagination
        page = self.paginate_queryset(messages)
        data = MessageSerializer(page, many=True, context={"conversation": conversation}).data
        return self.get_paginated_response(data)

    @document(
        operation_id="conversations_messages_create",
        request=MessageCreateSerializer,
        responses={
            201: MessageSerializer,
            200: MessageSerializer,
            **errors(
                400,
                404,
                409,
                415,
                body=True,
                e403="Not signed in, the CSRF token is missing, or the caller may not "
                "take part in this conversation.",
                e429="Over the `support_chat_send` rate; `Retry-After` says how many "
                "seconds to wait.",
                e503="`overloaded`: `SEND_QUEUE_LIMIT` sends are in progress on this worker; "
                "or `unavailable`: the database gave no connection. Nothing was stored: send "
                "it again with the same `client_id` after `Retry-After` seconds.",
            ),
        },
        description="201 with the stored message; 200 with the earlier one when `client_id` "
        "was already used (a retry).",
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation(slim=True)
        incoming = MessageCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        message, created = services.send_message(
            conversation,
            request.user,
            incoming.validated_data["text"],
            incoming.validated_data["client_id"],
        )
        data = MessageSerializer(message, context={"conversation": conversation}).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ReadView(ChatAPIView):
    """Mark the conversation read for the side asking (customer or staff)."""

    serializer_class = ConversationSerializer

    @document(
        operation_id="conversations_read_create",
        request=ReadSerializer,
        responses={200: ConversationSerializer, **errors(400, 404, 415, body=True)},
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation()
        incoming = ReadSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.mark_read(conversation, request.user, incoming.validated_data.get("up_to_id"))
        return self.conversation_response(conversation)


class UnreadCountView(ChatAPIView):
    @document(
        operation_id="unread_count_retrieve",
        responses={200: UnreadCountSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        own = Conversation.objects.for_customer(request.user).aggregate(n=Sum("unread_user_count"))
        data: dict[str, int] = {"unread_count": own["n"] or 0}
        if roles.is_staff(request.user):
            data["staff_unread_conversations"] = Conversation.objects.filter(
                unread_staff_count__gt=0
            ).count()
        return Response(data)


def _unread_notifications(user: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user, read_at__isnull=True)


class NotificationListView(ChatAPIView):
    """The caller's own notifications, newest first."""

    serializer_class = NotificationSerializer
    pagination_class = NotificationPagination

    @document(
        operation_id="notifications_list",
        paginated=True,
        responses={200: NotificationPageSerializer, **errors(404, e404="Invalid `cursor`.")},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(Notification.objects.filter(user=request.user))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class NotificationUnreadCountView(ChatAPIView):
    @document(
        operation_id="notifications_unread_count_retrieve",
        responses={200: NotificationUnreadCountSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response({"unread_count": _unread_notifications(request.user).count()})


class NotificationReadView(ChatAPIView):
    """Mark some (``ids``) or all (``all``) of the caller's notifications read. Ids that
    are not the caller's, or already read, are left alone: a repeat changes nothing."""

    @document(
        operation_id="notifications_read_create",
        request=NotificationReadSerializer,
        responses={
            200: NotificationReadResultSerializer,
            **errors(
                400,
                415,
                body=True,
                e400="Neither or both of `ids` and `all`, `all` not true, or `ids` not a "
                "list of 1 to 500 positive integers (or `detail` when the body is not "
                "valid JSON).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        incoming = NotificationReadSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        ids = None if incoming.validated_data.get("all") else incoming.validated_data["ids"]
        marked = services.mark_notifications_read(request.user, ids)
        unread = _unread_notifications(request.user).count()
        return Response({"marked": marked, "unread_count": unread})


def _preferences_data(preference: NotificationPreference) -> dict[str, bool]:
    return {name: getattr(preference, name) for name in services.PREFERENCE_FIELDS}


class NotificationPreferencesView(ChatAPIView):
    """The caller's own notification choices: ``email``, ``sound``, ``desktop``."""

    @document(
        operation_id="notifications_preferences_retrieve",
        responses={200: NotificationPreferencesSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(_preferences_data(NotificationPreference.for_user(request.user)))

    @document(
        operation_id="notifications_preferences_partial_update",
        request=NotificationPreferencesUpdateSerializer,
        responses={
            200: NotificationPreferencesSerializer,
            **errors(
                400,
                415,
                body=True,
                e400="A value that is not `true` or `false`, an unknown key, or a body "
                "that is not a JSON object (or `detail` when it is not valid JSON).",
            ),
        },
    )
    def patch(self, request: Request) -> Response:
        incoming = NotificationPreferencesUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        preference = services.update_notification_preferences(
            request.user, **incoming.validated_data
        )
        return Response(_preferences_data(preference))


class InboxView(ChatAPIView):
    """Staff: every conversation, filtered and searched, newest activity first."""

    permission_classes = [IsAuthenticated, IsSupportStaff]
    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "side": Side.STAFF}

    @document(
        operation_id="inbox_list",
        parameters=[InboxQuerySerializer],
        paginated=True,
        responses={
            200: ConversationPageSerializer,
            **errors(
                400,
                404,
                e400="A bad parameter, each with its messages.",
                e403=STAFF_ONLY,
                e404="Invalid `cursor`.",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = InboxQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        conversations = filter_inbox(request.user, **query.validated_data)
        page = self.paginate_queryset(conversations)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class _StaffActionView(ChatAPIView):
    permission_classes = [IsAuthenticated, IsSupportStaff]
    serializer_class = ConversationSerializer


class AssignView(_StaffActionView):
    @document(
        operation_id="conversations_assign_create",
        request=AssignSerializer,
        responses={
            200: ConversationSerializer,
            **errors(400, 404, 415, body=True, e403=STAFF_ONLY, e404="No such conversation."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation()
        incoming = AssignSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        assignee_id = incoming.validated_data["assignee"]
        assignee = None
        if assignee_id is not None:
            assignee = get_user_model().objects.filter(pk=assignee_id).first()
            if assignee is None:
                raise exceptions.ValidationError({"assignee": ["No user with this id."]})
        services.assign(conversation, request.user, assignee)
        return self.conversation_response(conversation)


class CloseView(_StaffActionView):
    @document(
        operation_id="conversations_close_create",
        request=None,
        responses={
            200: ConversationSerializer,
            **errors(404, e403=STAFF_ONLY, e404="No such conversation."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation()
        services.close(conversation, request.user)
        return self.conversation_response(conversation)


class ReopenView(_StaffActionView):
    @document(
        operation_id="conversations_reopen_create",
        request=None,
        responses={
            200: ConversationSerializer,
            **errors(404, e403=STAFF_ONLY, e404="No such conversation."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = self.get_conversation()
        services.reopen(conversation, request.user)
        return self.conversation_response(conversation)


class WebSocketTokenView(ChatAPIView):
    """A short-lived signed token for WebSocket clients without the session cookie."""

    @document(
        operation_id="ws_token_create",
        request=None,
        responses={200: WebSocketTokenSerializer, **errors()},
    )
    def post(self, request: Request) -> Response:
        session_key = getattr(getattr(request, "session", None), "session_key", None)
        return Response(
            {
                "token": tokens.make_token(request.user, session_key),
                "expires_in": chat_settings.WS_TOKEN_MAX_AGE,
            }
        )


class SchemaView(SpectacularAPIView):
    """OpenAPI 3 schema of this API alone, with the host's mount point as server URL.

    Not part of any schema itself (``schema = None``): a host's own SpectacularAPIView over
    all its URLs skips it instead of warning that it cannot guess its serializer.
    """

    urlconf = "django_support_chat.api.routes"
    schema = None

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        mount = request.path[: -len("schema/")] if request.path.endswith("schema/") else "/"
        self.custom_settings = {
            **CHAT_SCHEMA_SETTINGS,
            "SERVERS": [{"url": mount.rstrip("/") or "/"}],
        }
        return super().get(request, *args, **kwargs)
