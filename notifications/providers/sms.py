"""SMS through the real ``twilio`` client (Programmable Messaging, the 2010-04-01 Messages API).

``api_base`` points the client at another server speaking the same protocol (a local one in tests,
a regional edge in production); empty means api.twilio.com.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from urllib.request import getproxies

import requests
import urllib3
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notifications.providers.base import (
    LookupResult,
    OutgoingMessage,
    PermanentProviderError,
    SendResult,
    TransientProviderError,
    UnknownOutcomeError,
)

# Twilio error codes that mean this number will never receive an SMS from us: suppress it.
DEAD_NUMBER_CODES = frozenset({21211, 21214, 21217, 21610, 21612, 21614})
_CLOCK_SKEW = timedelta(seconds=30)

# The twilio client logs every request's URL and headers at INFO (a dozen lines per SMS, with the
# recipient's number): noise and personal data in our logs. Its warnings and errors still come through.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

# What the provider treats as "no answer" (the message may have been accepted) and as "not sent".
_TIMEOUTS = (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError)
_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError)


class PooledHttpClient(HttpClient):
    """The ``twilio`` client's transport on a bare urllib3 pool instead of a ``requests`` session.

    ``requests`` prepares, merges and hooks every request (cookies, environment settings, header
    validation): about half of an SMS's CPU in a worker, measured with the Twilio stub. Twilio's API needs
    none of it — one form-encoded POST with basic auth. urllib3 never retries here (``retries=False``):
    a POST that may have reached Twilio is settled by ``lookup``, never re-sent blindly.
    """

    def __init__(self, *, timeout: float, maxsize: int = 128) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False, timeout)
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=maxsize, retries=False, timeout=urllib3.Timeout(timeout)
        )
        self._auth: tuple[tuple[str, str], dict[str, str]] | None = None

    def _authorization(self, auth: tuple[str, str]) -> dict[str, str]:
        if self._auth is None or self._auth[0] != auth:
            self._auth = (auth, urllib3.util.make_headers(basic_auth=f"{auth[0]}:{auth[1]}"))
        return self._auth[1]

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        request_headers = dict(headers or {})
        if auth:
            request_headers.update(self._authorization(auth))
        if params:
            uri = f"{uri}{'&' if '?' in uri else '?'}{urlencode(params, doseq=True)}"
        body: str | None = None
        if data is not None:
            if request_headers.get("Content-Type", "").endswith("json"):
                body = json.dumps(data)
            else:
                body = urlencode(data, doseq=True)
                request_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        response = self.pool.request(
            method.upper(),
            uri,
            body=body,
            headers=request_headers,
            redirect=allow_redirects,
            timeout=urllib3.Timeout(timeout) if timeout else urllib3.util.Timeout.DEFAULT_TIMEOUT,
        )
        self._test_only_last_response = Response(
            response.status, response.data.decode("utf-8", "replace"), response.headers
        )
        return self._test_only_last_response


class TwilioSmsProvider:
    can_lookup = True
    channel = "sms"

    def __init__(
        self, *, name: str, account_sid: str, auth_token: str, from_: str, api_base: str = "", timeout: float
    ) -> None:
        self.name = name
        self.from_ = from_
        http_client: HttpClient
        if getproxies():
            # Behind an HTTP proxy from the environment, the library's own client knows how to use it.
            # One pooled connection per worker thread: its default pool (cpu + 4) would make a threaded
            # worker open and discard connections on every send.
            http_client = TwilioHttpClient(timeout=timeout)
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=128)
            assert http_client.session is not None
            http_client.session.mount("https://", adapter)
            http_client.session.mount("http://", adapter)
        else:
            http_client = PooledHttpClient(timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=http_client)
        if api_base:
            self.client.api.base_url = api_base.rstrip("/")

    def send(self, message: OutgoingMessage) -> SendResult:
        options: dict[str, Any] = {"to": message.to, "from_": self.from_, "body": message.text}
        if message.status_callback:
            options["status_callback"] = message.status_callback
        try:
            sent = self.client.messages.create(**options)
        except TwilioRestException as error:
            response = {"status": error.status, "code": error.code, "message": error.msg}
            if error.status in (401, 403, 429) or error.status >= 500:
                raise TransientProviderError(str(error.msg), response=response) from error
            subject = "phone" if error.code in DEAD_NUMBER_CODES else ""
            raise PermanentProviderError(str(error.msg), response=response, subject=subject) from error
        except _TIMEOUTS as error:
            raise UnknownOutcomeError(f"no answer from Twilio: {error}") from error
        except _TRANSPORT_ERRORS as error:
            raise TransientProviderError(f"{type(error).__name__}: {error}") from error
        return SendResult(
            provider_message_id=str(sent.sid), response={"sid": sent.sid, "status": sent.status}
        )

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        """Find a message to this number with this body sent since the claim.

        Twilio lists every message it accepted, so "not found" means it never accepted ours and a new
        attempt cannot duplicate it.
        """
        try:
            found = self.client.messages.list(
                to=message.to, date_sent_after=sent_after - timedelta(days=1), limit=200
            )
        except (TwilioRestException, *_TRANSPORT_ERRORS) as error:
            raise TransientProviderError(f"lookup failed: {error}") from error
        for candidate in found:
            created = candidate.date_created
            if candidate.body == message.text and (created is None or created >= sent_after - _CLOCK_SKEW):
                return LookupResult(
                    found=True,
                    provider_message_id=str(candidate.sid),
                    status=str(candidate.status),
                    response={"sid": candidate.sid, "status": candidate.status},
                )
        return LookupResult(found=False)
