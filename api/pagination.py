"""One list shape for every endpoint: ``{"count", "next", "previous", "results"}`` with limit/offset.

DRF's limit/offset pagination quietly replaces a bad value (``limit=abc``, ``offset=-1``, ``limit=9999``) with
its default; here a bad value is refused with 400, and the schema states the bounds the server enforces.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageSerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    offset = serializers.IntegerField(min_value=0, default=0)


def page_parse(request: Request) -> dict[str, int]:
    """``limit`` and ``offset`` from the query string; a ValidationError (400) names a bad one."""
    page = PageSerializer(
        data={k: request.query_params[k] for k in ("limit", "offset") if k in request.query_params}
    )
    page.is_valid(raise_exception=True)
    return dict(page.validated_data)


class ApiPagination(LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return page_parse(request)["limit"]

    def get_offset(self, request: Request) -> int:
        return page_parse(request)["offset"]

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"Page size (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            {
                "name": "offset",
                "required": False,
                "in": "query",
                "description": "Where the page starts",
                "schema": {"type": "integer", "minimum": 0},
            },
        ]
