"""Mobile and web push through the real ``firebase-admin`` client (FCM HTTP v1 API).

``endpoint`` replaces https://fcm.googleapis.com/v1/projects/{project}/messages:send (a local server
in tests): firebase-admin has no public option for it, so the messaging service's URL attribute is set
on this provider's own Firebase app. Without a service-account file (local server only) the app uses
anonymous Google credentials.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from typing import Any
from urllib.request import getproxies

import firebase_admin
import requests
import requests.adapters
from firebase_admin import credentials, exceptions, messaging
from google.auth.credentials import AnonymousCredentials

from notifications.providers.base import (
    LookupResult,
    OutgoingMessage,
    PermanentProviderError,
    ProviderError,
    SendResult,
    TransientProviderError,
    UnknownOutcomeError,
)

_apps_lock = threading.Lock()


class _AnonymousCredential(credentials.Base):
    def get_credential(self) -> AnonymousCredentials:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]


class FcmPushProvider:
    can_lookup = False
    channel = "push"

    def __init__(
        self, *, name: str, project_id: str, credentials_file: str = "", endpoint: str = "", timeout: float
    ) -> None:
        self.name = name
        credential = credentials.Certificate(credentials_file) if credentials_file else _AnonymousCredential()
        with _apps_lock:
            # The provider is rebuilt when settings change; its Firebase app must follow.
            with contextlib.suppress(ValueError):
                firebase_admin.delete_app(firebase_admin.get_app(name))
            self.app = firebase_admin.initialize_app(
                credential, {"projectId": project_id, "httpTimeout": timeout}, name=name
            )
        service = messaging._get_messaging_service(self.app)
        if endpoint:
            service._fcm_url = endpoint.format(project_id)
        # The send ledger owns retries (backoff with jitter, failover, an attempt budget); the library's
        # own silent retries of 500/503 would multiply them and hold a worker thread for seconds.
        session = service._client.session
        # No proxies in the environment: don't scan os.environ on every send (see providers/sms.py).
        session.trust_env = bool(getproxies())
        for prefix in ("http://", "https://", "https://fcm.googleapis.com"):
            session.mount(prefix, requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=100))

    def _send_one(self, message: OutgoingMessage, token: str) -> str:
        fcm_message = messaging.Message(
            token=token,
            notification=messaging.Notification(title=message.subject or None, body=message.text or None),
            data={"delivery_id": message.delivery_id, **message.data},
        )
        try:
            return str(messaging.send(fcm_message, app=self.app))
        except (messaging.UnregisteredError, messaging.SenderIdMismatchError) as error:
            raise PermanentProviderError(str(error), subject=token, response=_body(error)) from error
        except exceptions.InvalidArgumentError as error:
            raise PermanentProviderError(str(error), subject=token, response=_body(error)) from error
        except exceptions.DeadlineExceededError as error:
            if isinstance(error.cause, requests.ConnectTimeout):
                raise TransientProviderError(str(error)) from error
            raise UnknownOutcomeError(str(error)) from error
        except exceptions.FirebaseError as error:
            # UNAVAILABLE, INTERNAL, QUOTA_EXCEEDED, UNAUTHENTICATED…: FCM did not take the message.
            raise TransientProviderError(str(error), response=_body(error)) from error

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send to every active token; success when at least one device accepted it.

        A device that already got the message is never sent it again, so once one token succeeded the
        transient failures of the others are logged in the response rather than retried.
        """
        accepted: dict[str, str] = {}
        dead: list[str] = []
        errors: list[ProviderError] = []
        for token in message.tokens or (message.to,):
            try:
                accepted[token] = self._send_one(message, token)
            except PermanentProviderError as error:
                dead.append(token)
                errors.append(error)
            except ProviderError as error:
                errors.append(error)
                if not accepted:
                    raise
        if not accepted:
            first = errors[0]
            raise type(first)(str(first), response=first.response, subject=",".join(dead))
        response: dict[str, Any] = {"names": list(accepted.values())}
        if errors:
            response["errors"] = [str(error)[:300] for error in errors]
        return SendResult(
            provider_message_id=next(iter(accepted.values())), response=response, dead_tokens=tuple(dead)
        )

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        # FCM has no message lookup: an unknown push waits for an operator, never a blind resend.
        return None


def _body(error: exceptions.FirebaseError) -> dict[str, Any]:
    response = error.http_response
    if response is None:
        return {}
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return {"status": response.status_code}
    return body
