"""Per-key scopes: a view declares ``required_scopes = {"campaigns"}``; a key must hold every one of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.models import ApiKey

if TYPE_CHECKING:
    # rest_framework.views imports the permission and throttle classes named in settings.
    from rest_framework.views import APIView


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"This API key lacks the scope(s): {', '.join(missing)}.")
        self.missing = missing


class HasScope(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        api_key: Any = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated()
        required: set[str] = set(getattr(view, "required_scopes", set()))
        missing = sorted(required - set(api_key.scopes))
        if missing:
            raise InsufficientScope(missing)
        return True
