from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

from api.exceptions import error_body

CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


class JsonApiErrorsMiddleware:
    """Under /api/, an error page that did not come from the API's own handler (Django's debug 404/500
    pages, a CSRF or DisallowedHost refusal, a resolver miss) is replaced by the JSON error shape, so an API
    client never has to parse HTML — in development (DEBUG) as in production."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
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
        return response
