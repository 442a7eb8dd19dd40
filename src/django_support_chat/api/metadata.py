"""What ``OPTIONS`` answers on the chat's endpoints.

DRF's ``SimpleMetadata`` describes the request body of ``POST`` from the view's
``get_serializer()``: a 500 on views without a ``serializer_class`` (``ws-token``), and the
wrong fields on the others (the chat's views name their output serializer there, and read
their input with another). The OpenAPI schema (``<mount>/schema/``) is the one description
of request bodies, so ``OPTIONS`` answers the view's name, description, renderers and
parsers only.
"""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request


class ChatMetadata(SimpleMetadata):
    def determine_actions(self, request: Request, view: Any) -> dict[str, Any]:
        return {}
