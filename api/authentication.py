"""``Authorization: Bearer ie_<prefix>_<secret>`` for service-to-service calls."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from api.models import ApiKey
from api.services import api_key_authenticate, api_key_touch


class InvalidApiKey(exceptions.AuthenticationFailed):
    default_detail = "The API key is not valid."
    default_code = "invalid_api_key"


class ApiKeyAuthentication(BaseAuthentication):
    """Sets ``request.auth`` to the ApiKey; ``request.user`` stays None: a key is a service, not a person."""

    keyword = "Bearer"

    def authenticate(self, request: Request | HttpRequest) -> tuple[None, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != self.keyword.lower() or not raw_key or " " in raw_key:
            raise InvalidApiKey("Send the API key as 'Authorization: Bearer <key>'.")
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            raise InvalidApiKey()
        if api_key.revoked_at is not None:
            raise InvalidApiKey("This API key has been revoked.")
        api_key_touch(api_key=api_key)
        return None, api_key

    def authenticate_header(self, request: Request | HttpRequest) -> str:
        # Makes DRF answer 401 (not 403) when no or a bad key is sent.
        return f'{self.keyword} realm="api"'
