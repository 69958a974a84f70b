"""Base serializers for the API: unknown fields are refused, not silently dropped.

A typo in campaigns-as-code (``"holdout_pct": 10``) must fail loudly rather than create a campaign without
a holdout. Read-only fields sent back (``id``, ``created_at`` from a GET → edit → PUT round trip) are known
and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail


class StrictFieldsMixin:
    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[ErrorDetail]] = {}
        if isinstance(data, Mapping):
            unknown = {
                str(name): [ErrorDetail("Unknown field.", code="unknown_field")]
                for name in data
                if name not in self.fields
            }
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            # Report unknown fields with the other errors, nested ones included, in one answer.
            if unknown and isinstance(exc.detail, dict):
                exc.detail.update(unknown)  # type: ignore[arg-type]
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    pass


class ErrorInfoSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. invalid_rule")
    message = serializers.CharField(help_text="For people; may change")
    details = serializers.DictField(help_text="Field errors, positions, missing scopes…")


class ErrorSerializer(serializers.Serializer):
    """Documents the error shape in the OpenAPI schema (see docs/api.md)."""

    error = ErrorInfoSerializer()
