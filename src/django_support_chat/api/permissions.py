"""Who may call what. Object access (own conversation or staff) is decided in ``roles``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .. import roles


class IsSupportStaff(BasePermission):
    message = "Only support staff may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return roles.is_staff(request.user)
