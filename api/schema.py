"""OpenAPI additions: the Bearer scheme, the Idempotency-Key header on idempotent writes, error responses."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator, URLValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object, force_instance
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer
from rest_framework.fields import CharField

from api import idempotency
from api.serializers import ErrorSerializer, StrictFieldsMixin

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
NO_NULL_CHARACTERS = "^[^\\u0000]*$"


def _whitespace() -> str:
    """What ``str.strip()`` removes (DRF trims with it), spelled out: a pattern's ``\\s`` differs by dialect
    (ECMA's leaves out U+001C-U+001F and U+0085). Every such character is in the Basic Multilingual Plane."""
    codes = [code for code in range(0x10000) if chr(code).isspace()]
    spans: list[list[int]] = []
    for code in codes:
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}" for first, last in spans
    )


# A field that trims whitespace and refuses blanks refuses "  " too: something else must be in it.
NOT_ONLY_WHITESPACE = f"^[^\\u0000]*[^\\u0000{_whitespace()}][^\\u0000]*$"
# Django's URLValidator, narrowed to what a pattern states plainly (``format: uri`` admits "x:"): http or
# https, a DNS name with a top-level domain and within 253 characters, an optional port, then anything but
# spaces; at most URLValidator.max_length characters in all.
HTTP_URL = r"^https?://([a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?\.){1,3}[a-z]{2,63}(:[0-9]{1,5})?([/?#][!-~]*)?$"


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
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": idempotency.MAX_KEY_LENGTH,
                        "pattern": idempotency.KEY_PATTERN,
                    },
                    OpenApiParameter.HEADER,
                    description="Retry-safe key: a repeat gets the first answer "
                    f"(with `{idempotency.REPLAYED_HEADER}: true`).",
                )
            )
        return parameters

    def _map_serializer(self, serializer: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        mapped = super()._map_serializer(serializer, direction, bypass_extensions)  # type: ignore[no-untyped-call]
        if direction == "request" and isinstance(serializer, StrictFieldsMixin):
            # Unknown fields are refused (api/serializers.py): the schema says so, or generated clients and
            # fuzzers would believe extra properties are fine.
            mapped["additionalProperties"] = False
        return mapped

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        mapped = super()._map_serializer_field(field, direction, bypass_extensions)  # type: ignore[no-untyped-call]
        for validator in field.validators if direction == "request" else []:
            if isinstance(validator, URLValidator):
                mapped["pattern"] = HTTP_URL
                mapped["maxLength"] = min(mapped.get("maxLength", validator.max_length), validator.max_length)
        if (
            direction == "request"
            and isinstance(field, CharField)
            and mapped.get("type") == "string"
            and "pattern" not in mapped
            # A RegexField's own pattern (inserted after this) says more, and excludes NUL already.
            and not any(isinstance(v, RegexValidator) for v in field.validators)
        ):
            # DRF refuses "\x00" in every string field, and a stripped blank where blanks are not allowed.
            blank_refused = not field.allow_blank and field.trim_whitespace
            mapped["pattern"] = NOT_ONLY_WHITESPACE if blank_refused else NO_NULL_CHARACTERS
        if mapped.get("type") == "array":
            # drf-spectacular leaves out allow_empty=False and a ListSerializer's max_length.
            if getattr(field, "allow_empty", True) is False:
                mapped["minItems"] = max(mapped.get("minItems", 0), 1)
            if (max_length := getattr(field, "max_length", None)) is not None and "maxItems" not in mapped:
                mapped["maxItems"] = max_length
        return mapped

    def _get_request_for_media_type(self, serializer: Any, direction: Any = "request") -> Any:
        schema, required = super()._get_request_for_media_type(serializer, direction)  # type: ignore[no-untyped-call]
        if isinstance(serializer, PolymorphicProxySerializer):
            # drf-spectacular leaves a one-of body optional; required when each shape has a required field.
            named = serializer.serializers
            listed = named.values() if isinstance(named, dict) else named
            shapes = [force_instance(shape) for shape in listed]  # type: ignore[no-untyped-call]
            required = all(any(field.required for field in shape.fields.values()) for shape in shapes)
        return schema, required

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = dict(super()._get_response_bodies(direction))
        # Every operation validates something (a body, or its query parameters: filters, dates, limits).
        codes = ["400", "401", "403", "429"]
        if self.method in WRITE_METHODS:
            # 422: well-formed but refused for what it says (core.errors.UnprocessableError: a rule across
            # fields, a rule or template that does not compile) or idempotency_key_reused.
            codes += ["409", "422"]
        if "{" in self.path or self.method in WRITE_METHODS:
            codes.append("404")  # the object named in the path, or one a body refers to
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    ErrorSerializer, code, direction=direction
                )
        return responses
