from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse

from api.exceptions import error_body

CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def json_error_for(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if (
        response.status_code < 400
        or not request.path.startswith("/api/")
        or response.get("Content-Type", "").startswith("application/json")
    ):
        return response
    status = response.status_code
    code = "server_error" if status >= 500 else CODES.get(status, "error")
    try:
        message = HTTPStatus(status).phrase
    except ValueError:
        message = "Error"
    replacement = JsonResponse(error_body(code, message), status=status)
    for header in ("Retry-After", "WWW-Authenticate", "Allow"):
        if header in response:
            replacement[header] = response[header]
    return replacement


class JsonApiErrorsMiddleware:
    """Under /api/, an error page that did not come from the API's own handler (Django's debug 404/500
    pages, a CSRF or DisallowedHost refusal, a resolver miss) is replaced by the JSON error shape, so an API
    client never has to parse HTML, in development (DEBUG) as in production.

    Sync and async capable, so under daphne it adds no thread hop to the request path."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return json_error_for(request, self.get_response(request))

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        return json_error_for(request, await self.get_response(request))
