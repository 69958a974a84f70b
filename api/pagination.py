"""One list shape for every endpoint: ``{"count", "next", "previous", "results"}`` with limit/offset."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class ApiPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500
