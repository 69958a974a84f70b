"""The one application error type.

Services raise ``ApplicationError`` (or a subclass) when a rule of the domain refuses a request; the API's
exception handler turns it into a 4xx JSON body ``{"error": {"code", "message", "details"}}`` and the admin
shows ``message`` to the marketer. Nothing else maps domain failures to HTTP.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    code = "invalid"
    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or {}


class NotFoundError(ApplicationError):
    code = "not_found"
    status_code = 404


class ConflictError(ApplicationError):
    code = "conflict"
    status_code = 409


class UnprocessableError(ApplicationError):
    """A well-formed request refused for what it says: a rule across fields or items (an end before its
    start, two control variants), an object it names of the wrong kind, or a rule or template text that
    does not compile. The OpenAPI schema states shapes, and a request it forbids gets 400; these it cannot
    state, so they answer 422."""

    status_code = 422
