"""``Authorization: Bearer ie_<prefix>_<secret>`` for service-to-service calls."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from api.exceptions import error_body
from api.models import ApiKey, Scope
from api.services import api_key_authenticate, api_key_touch


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_detail = "The API key is not valid."
    default_code = "invalid_api_key"


class ApiKeyAuthentication(BaseAuthentication):
    """Sets ``request.auth`` to the ApiKey; ``request.user`` stays None: a key is a service, not a person."""

    keyword = "Bearer"

    def authenticate(self, request: Request | HttpRequest) -> tuple[None, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != self.keyword.lower() or not raw_key or " " in raw_key:
            raise InvalidApiKey("Send the API key as 'Authorization: Bearer <key>'.")
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            raise InvalidApiKey()
        if api_key.revoked_at is not None:
            raise InvalidApiKey("This API key has been revoked.")
        api_key_touch(api_key=api_key)
        return None, api_key

    def authenticate_header(self, request: Request | HttpRequest) -> str:
        # Makes DRF answer 401 (not 403) when no or a bad key is sent.
        return f'{self.keyword} realm="api"'


# --- Operator endpoints (plain Django views: /metrics, /ws/stats, readiness details) -----------------------


def operator_access(request: HttpRequest) -> bool | None:
    """Whether the caller may read what describes the running system: True for ``Authorization: Bearer``
    with METRICS_TOKEN (checked first and without the database, so a scrape works while PostgreSQL is down)
    or an API key holding the ``metrics`` scope, or for a staff session; False for credentials that are not
    enough; None when none were presented."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return False
        if settings.METRICS_TOKEN and constant_time_compare(credential, settings.METRICS_TOKEN):
            return True
        try:
            api_key = api_key_authenticate(raw_key=credential)
        except DatabaseError:
            return False
        return api_key is not None and api_key.revoked_at is None and Scope.METRICS in api_key.scopes
    try:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return bool(user.is_staff)
    except DatabaseError:  # the session store is PostgreSQL
        return False
    return None


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """401 without credentials, 403 with insufficient ones, in the API's error shape."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        access = operator_access(request)
        if access:
            return view(request, *args, **kwargs)
        if access is None:
            response = JsonResponse(
                error_body(
                    "not_authenticated",
                    "Send 'Authorization: Bearer <METRICS_TOKEN or an API key with the metrics scope>', "
                    "or log in as staff.",
                ),
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return JsonResponse(
            error_body("permission_denied", "These credentials may not read operator endpoints."), status=403
        )

    return guarded
