"""OpenAPI additions: the Bearer scheme, the Idempotency-Key header on idempotent writes, error responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from api import idempotency
from api.serializers import ErrorSerializer

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106  (the scheme name, not a secret)
            bearer_format="ie_<prefix>_<secret>",
        )


class ApiAutoSchema(AutoSchema):
    def _handler(self) -> Any:
        action = getattr(self.view, "action", None)
        return getattr(self.view, action or self.method.lower(), None)

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self.method in WRITE_METHODS and getattr(self._handler(), "idempotent", False):
            parameters.append(
                OpenApiParameter(
                    idempotency.HEADER,
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    description="Retry-safe key: a repeat gets the first answer "
                    f"(with `{idempotency.REPLAYED_HEADER}: true`).",
                )
            )
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = dict(super()._get_response_bodies(direction))
        # Every operation validates something (a body, or its query parameters: filters, dates, limits).
        codes = ["400", "401", "403", "429"]
        if self.method in WRITE_METHODS:
            codes.append("409")
            if getattr(self._handler(), "idempotent", False):
                codes.append("422")  # idempotency_key_reused: the same key with another request
        if "{" in self.path:
            codes.append("404")
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    ErrorSerializer, code, direction=direction
                )
        return responses
