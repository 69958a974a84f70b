"""Base serializers for the API: unknown fields are refused, not silently dropped.

A typo in campaigns-as-code (``"holdout_pct": 10``) must fail loudly rather than create a campaign without
a holdout. Read-only fields sent back (``id``, ``created_at`` from a GET → edit → PUT round trip) are known
and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

# DRF coerces across JSON types (a number for a string field, "5" for an integer, "yes" for a boolean);
# the schema names one type per field, so the API accepts that type only.
JSON_TYPES: list[tuple[type[serializers.Field], tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "Must be a boolean."),
    (serializers.IntegerField, (int,), "Must be an integer."),
    (serializers.CharField, (str,), "Must be a string."),
]


def _wrong_type(field: serializers.Field, value: Any) -> str | None:
    if value is None or field.read_only:
        return None  # null is the field's own business (allow_null)
    for field_type, json_types, message in JSON_TYPES:
        if isinstance(field, field_type):
            ok = isinstance(value, json_types) and not (
                field_type is serializers.IntegerField and isinstance(value, bool)
            )
            return None if ok else message
    return None


class StrictFieldsMixin:
    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        refused: dict[str, list[ErrorDetail]] = {}
        if isinstance(data, Mapping):
            refused = {
                str(name): [ErrorDetail("Unknown field.", code="unknown_field")]
                for name in data
                if name not in self.fields
            }
            for name, value in data.items():
                if name in self.fields and (message := _wrong_type(self.fields[name], value)):
                    refused[str(name)] = [ErrorDetail(message, code="invalid")]
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            # Report unknown and mistyped fields with the other errors, nested ones included, in one answer.
            if refused and isinstance(exc.detail, dict):
                exc.detail.update(refused)  # type: ignore[arg-type]
            raise
        if refused:
            raise serializers.ValidationError(refused)
        return value


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    pass


class ErrorInfoSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. invalid_rule")
    message = serializers.CharField(help_text="For people; may change")
    details = serializers.DictField(help_text="Field errors, positions, missing scopes…")


LOCAL_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"


@extend_schema_field({"type": "string", "pattern": LOCAL_TIME_PATTERN})
class LocalTimeField(serializers.TimeField):
    """A time of day with no UTC offset, ``HH:MM[:SS[.ffffff]]`` (OpenAPI's ``format: time`` would demand an
    offset and seconds); nothing else is read as a time."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not re.fullmatch(LOCAL_TIME_PATTERN, value):
            self.fail("invalid", format="hh:mm[:ss[.ffffff]]")
        return super().to_internal_value(value)


class ErrorSerializer(serializers.Serializer):
    """Documents the error shape in the OpenAPI schema (see docs/api.md)."""

    error = ErrorInfoSerializer()
