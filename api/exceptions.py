"""The one place where errors become HTTP: ``{"error": {"code", "message", "details"}}`` for every API error.

Set as REST_FRAMEWORK["EXCEPTION_HANDLER"]; ``json_404``/``json_500`` give Django's own 404/500 the same
shape under /api/, so an API client never receives an HTML page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from api.permissions import InsufficientScope
from core.errors import ApplicationError
from core.observability import get_logger

logger = get_logger(__name__)

UNKNOWN_FIELD = "unknown_field"


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def _codes(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        return set().union(*(_codes(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_codes(v) for v in value)) if value else set()
    return {str(value)}


def _unknown_paths(codes: Any, path: str = "") -> list[str]:
    """Dotted paths (``variants.0.colour``) of every field refused as unknown."""
    found: list[str] = []
    if isinstance(codes, Mapping):
        for name, sub in codes.items():
            here = f"{path}.{name}" if path else str(name)
            if sub == UNKNOWN_FIELD or (isinstance(sub, list) and UNKNOWN_FIELD in sub):
                found.append(here)
            else:
                found.extend(_unknown_paths(sub, here))
    elif isinstance(codes, list):
        for index, sub in enumerate(codes):
            if isinstance(sub, Mapping | list):
                found.extend(_unknown_paths(sub, f"{path}.{index}" if path else str(index)))
    return found


def _validation_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, Mapping):
        return {str(k): v for k, v in detail.items()}
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def _from_validation_error(exc: exceptions.ValidationError) -> Response:
    codes = exc.get_codes()
    details = _validation_details(exc.detail)
    if UNKNOWN_FIELD in _codes(codes):
        unknown = _unknown_paths(codes)
        body = error_body(
            UNKNOWN_FIELD,
            f"Unknown field(s): {', '.join(unknown)}.",
            {**details, "unknown_fields": unknown},
        )
    else:
        body = error_body("invalid", "The request is not valid.", details)
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def _retry_after(exc: exceptions.APIException) -> int | None:
    wait: float | None = getattr(exc, "wait", None)
    return int(wait) + 1 if isinstance(exc, exceptions.Throttled) and wait is not None else None


CODES_BY_TYPE: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ParseError, "malformed_json"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "invalid_api_key"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        body = error_body("payload_too_large", "The request body is too large.")
        return Response(body, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", str(exc)), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, IntegrityError):
        # A uniqueness or check the services did not anticipate (e.g. two racing creates with one name).
        logger.warning("api.integrity_error", error=str(exc))
        body = error_body("conflict", "The change conflicts with existing data.")
        return Response(body, status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, DataError):
        # Out-of-range numbers or characters PostgreSQL cannot store: the client's input, not our fault.
        return Response(
            error_body("invalid", "A value is out of range or contains characters that cannot be stored."),
            status=status.HTTP_400_BAD_REQUEST,
        )

    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django logs it and json_500 answers

    if isinstance(exc, exceptions.ValidationError):
        response = _from_validation_error(exc)
    else:
        code = next((c for t, c in CODES_BY_TYPE if isinstance(exc, t)), None)
        if code is None:
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else exc.default_code
        details: dict[str, Any] = {}
        if isinstance(exc, InsufficientScope):
            details["missing_scopes"] = exc.missing
        retry_after = _retry_after(exc)
        if retry_after is not None:
            details["retry_after"] = retry_after
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = Response(error_body(code, str(message), details), status=exc.status_code)

    if auth_header := getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = auth_header
    if (retry_after := _retry_after(exc)) is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def json_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def json_500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("server_error", "An unexpected error occurred."), status=500)
    return defaults.server_error(request)
