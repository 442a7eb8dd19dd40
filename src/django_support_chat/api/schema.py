"""The OpenAPI description of the REST API (drf-spectacular).

What keeps the chat's part of any schema to itself:

* every view uses ``ChatAutoSchema`` whatever the host's ``DEFAULT_SCHEMA_CLASS`` is: tag
  ``support-chat``, operation ids starting with ``support_chat_``;
* every component is named ``SupportChat...`` (the serializers' ``component_name``,
  ``SupportChatValidationError`` below), enums included, so a host's own ``User`` or
  ``StatusEnum`` is never replaced;
* ``CHAT_SCHEMA_SETTINGS`` are the settings of the chat's own schema (``<mount>/schema/``),
  whatever the host's ``SPECTACULAR_SETTINGS`` say;
* ``exclude_chat_endpoints`` is a preprocessing hook for hosts that leave the chat out of
  their own schema.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers

from .serializers import ErrorSerializer, ValidationErrorSerializer

COMPONENT_PREFIX = "SupportChat"
OPERATION_PREFIX = "support_chat_"
TAG = "support-chat"

# The chat's own schema (``SchemaView``; or ``manage.py spectacular --urlconf
# django_support_chat.api.routes --custom-settings django_support_chat.api.schema.CHAT_SCHEMA_SETTINGS``).
# Everything that would put the host's hooks, components or path rewriting into it is reset.
CHAT_SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "django-support-chat API",
    "DESCRIPTION": "Customer-support chat: the customer widget's and the staff inbox's API.",
    "VERSION": "1",
    # The default mount point; SchemaView puts the one it is served under.
    "SERVERS": [{"url": "/api/chat"}],
    "TAGS": [{"name": TAG, "description": "Customer-support chat (django-support-chat)."}],
    "SCHEMA_PATH_PREFIX": "/",
    "SCHEMA_PATH_PREFIX_TRIM": False,
    "SCHEMA_PATH_PREFIX_INSERT": "",
    "CAMELIZE_NAMES": False,
    "APPEND_COMPONENTS": {},
    "PREPROCESSING_HOOKS": [],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums"],
}


class ChatAutoSchema(AutoSchema):
    """The schema class of every chat view: one tag, prefixed operation ids and names."""

    def get_tags(self) -> list[str]:
        return [TAG]

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        return _prefixed(operation_id, OPERATION_PREFIX)

    def get_serializer_name(self, serializer: Any, direction: Any) -> str:
        # Only for serializers without a component_name (every chat serializer has one).
        return _prefixed(super().get_serializer_name(serializer, direction), COMPONENT_PREFIX)

    def _get_serializer_name(
        self, serializer: Any, direction: Any, *args: Any, **kwargs: Any
    ) -> str:
        # PATCH bodies are named "Patched<name>": keep the prefix in front.
        name: str = super()._get_serializer_name(serializer, direction, *args, **kwargs)
        patched = "Patched" + COMPONENT_PREFIX
        if name.startswith(patched):
            name = COMPONENT_PREFIX + "Patched" + name.removeprefix(patched)
        return name

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict[str, Any]]:
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["schema"].get("type") == "integer":
                # Django's <int:pk> matches digits only: "-1" is no URL of this API (the
                # site's HTML 404), so the schema must not offer it.
                parameter["schema"] = {**parameter["schema"], "minimum": 0}
        return parameters  # type: ignore[no-any-return]

    def get_paginated_name(self, serializer_name: str) -> str:
        return f"{COMPONENT_PREFIX}Paginated{serializer_name.removeprefix(COMPONENT_PREFIX)}List"


def _prefixed(name: str, prefix: str) -> str:
    return name if name.startswith(prefix) else prefix + name


class ValidationErrorExtension(OpenApiSerializerExtension):
    """``SupportChatValidationError``: an object whose every key holds a list of messages."""

    target_class = ValidationErrorSerializer

    def get_name(self, auto_schema: AutoSchema, direction: Any) -> str:
        return f"{COMPONENT_PREFIX}ValidationError"

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": "Each invalid field (or `non_field_errors`) with its messages, "
            'e.g. `{"text": ["Message text may not be blank."]}`.',
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "minProperties": 1,
        }


# Error responses -----------------------------------------------------------------------------

# A body that is not JSON answers 400 {"detail": "JSON parse error - ..."}; a body that is
# JSON but invalid names its fields.
BAD_REQUEST_BODY = PolymorphicProxySerializer(
    component_name=f"{COMPONENT_PREFIX}BadRequest",
    serializers=[ValidationErrorSerializer, ErrorSerializer],
    resource_type_field_name=None,
)


@extend_schema_serializer(component_name=f"{COMPONENT_PREFIX}Unavailable")
class UnavailableSerializer(serializers.Serializer):
    """503: the worker is busy (``overloaded``: ``SEND_QUEUE_LIMIT`` sends pending) or the
    database gave no connection (``unavailable``). Nothing was stored; send the same request
    again (a message with the same ``client_id``) after ``retry_after`` seconds."""

    detail = serializers.CharField(read_only=True)
    code = serializers.CharField(read_only=True, help_text="`overloaded` or `unavailable`.")
    retry_after = serializers.FloatField(read_only=True, help_text="Seconds (SEND_RETRY_AFTER).")


ERROR_DESCRIPTIONS = {
    400: "Invalid query parameter: each field with its messages.",
    401: "Not signed in, with an authentication class that asks for credentials (token, basic).",
    403: "Not signed in (session authentication), or the CSRF token is missing.",
    404: "No such conversation for the caller (or an invalid `cursor`).",
    409: "Staff reply to a closed conversation: reopen it first.",
    415: "The body is not JSON.",
    429: "Over the rate limit; `Retry-After` says how many seconds to wait.",
    503: "The database gave no connection (`code` `unavailable`): try again after "
    "`Retry-After` seconds.",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    location=OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds until the next request is allowed (whole seconds, at least 1).",
)

PAGE_PARAMETERS = [
    OpenApiParameter(
        "cursor",
        OpenApiTypes.STR,
        description="Set by the `next` and `previous` links; do not build it yourself.",
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1},
        description="Items per page, at most 200 (more counts as 200). Anything but a "
        "positive integer is a 400.",
    ),
]

# Every paginated list can answer these, whatever else it declares.
PAGE_ERRORS = {
    400: "A bad query parameter (`page_size` not a positive integer, ...): each with its messages.",
    404: "Invalid `cursor`.",
}


def errors(*codes: int, body: bool = False, **descriptions: str) -> dict[int, OpenApiResponse]:
    """Error responses for ``codes``, plus 401, 403, 429 and 503, which every endpoint can
    answer.

    ``body``: the endpoint parses a JSON body, so its 400 may also be a parse error
    (``SupportChatError``). ``descriptions``: ``e403="..."`` replaces the default text.
    """
    responses = {}
    for code in sorted({*codes, 401, 403, 429, 503}):
        description = descriptions.get(f"e{code}", ERROR_DESCRIPTIONS[code])
        if code == 400:
            serializer: Any = BAD_REQUEST_BODY if body else ValidationErrorSerializer
            if body and "e400" not in descriptions:
                description = "Invalid body: each field with its messages (or `detail` when "
                description += "the body is not valid JSON)."
        elif code == 503:
            serializer = UnavailableSerializer
        else:
            serializer = ErrorSerializer
        responses[code] = OpenApiResponse(serializer, description=description)
    return responses


def document(*, operation_id: str, paginated: bool = False, **kwargs: Any) -> Any:
    """``extend_schema`` on ``ChatAutoSchema``, whatever the host's ``DEFAULT_SCHEMA_CLASS``,
    so hosts need no REST_FRAMEWORK change for the chat's schema.

    ``operation_id`` gets the ``support_chat_`` prefix; ``paginated`` adds the ``cursor``
    and ``page_size`` parameters, and the 400 and 404 they can cause. The 429 response gets
    its ``Retry-After`` header.
    """
    parameters = [*kwargs.pop("parameters", []), RETRY_AFTER]
    if paginated:
        parameters += PAGE_PARAMETERS
        responses = kwargs["responses"] = dict(kwargs.get("responses", {}))
        for code, description in PAGE_ERRORS.items():
            if code not in responses:
                serializer = ValidationErrorSerializer if code == 400 else ErrorSerializer
                responses[code] = OpenApiResponse(serializer, description=description)

    def decorator(method: Any) -> Any:
        method.schema = ChatAutoSchema
        return extend_schema(
            operation_id=_prefixed(operation_id, OPERATION_PREFIX),
            parameters=parameters,
            **kwargs,
        )(method)

    return decorator


# Hosts ------------------------------------------------------------------------------------


def exclude_chat_endpoints(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """drf-spectacular preprocessing hook: leave the chat's endpoints out of a schema.

    In the host's settings::

        SPECTACULAR_SETTINGS = {
            "PREPROCESSING_HOOKS": ["django_support_chat.api.schema.exclude_chat_endpoints"],
        }

    The chat's own schema (``<mount>/schema/``) does not run the host's hooks.
    """
    from .views import ChatAPIView

    return [
        (path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if not issubclass(getattr(callback, "cls", type(None)), ChatAPIView)
    ]
