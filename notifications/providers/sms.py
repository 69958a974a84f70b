"""SMS through the real ``twilio`` client (Programmable Messaging, the 2010-04-01 Messages API).

``api_base`` points the client at another server speaking the same protocol (a local one in tests,
a regional edge in production); empty means api.twilio.com.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.request import getproxies

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
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


class TwilioSmsProvider:
    can_lookup = True
    channel = "sms"

    def __init__(
        self, *, name: str, account_sid: str, auth_token: str, from_: str, api_base: str = "", timeout: float
    ) -> None:
        self.name = name
        self.from_ = from_
        http_client = TwilioHttpClient(timeout=timeout)
        # One pooled connection per worker thread: the library's default pool (cpu + 4) would make a
        # threaded worker open and discard connections on every send.
        if http_client.session is not None:
            # Without proxies in the environment, stop requests from scanning os.environ for them on
            # every send (a measurable share of a send's CPU time).
            http_client.session.trust_env = bool(getproxies())
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=128)
            http_client.session.mount("https://", adapter)
            http_client.session.mount("http://", adapter)
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
        except requests.ReadTimeout as error:
            raise UnknownOutcomeError(f"no answer from Twilio: {error}") from error
        except requests.RequestException as error:
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
        except (TwilioRestException, requests.RequestException) as error:
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
