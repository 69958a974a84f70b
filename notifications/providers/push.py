"""Push: mobile devices through the real ``firebase-admin`` client (FCM HTTP v1 API), browsers through
Web Push (``pywebpush``, below). Each sends to its own kind of device; with both in the channel's list
(``NOTIFICATION_PROVIDERS_PUSH=fcm,webpush``) a shopper whose devices are all browsers is reached by the
second, and one with both kinds by the first that takes the message (FCM down: the web devices).

``endpoint`` replaces https://fcm.googleapis.com/v1/projects/{project}/messages:send (a local server
in tests): firebase-admin has no public option for it, so the messaging service's URL attribute is set
on this provider's own Firebase app. Without a service-account file (local server only) the app uses
anonymous Google credentials.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.request import getproxies

import firebase_admin
import requests
import requests.adapters
from firebase_admin import credentials, exceptions, messaging
from google.auth.credentials import AnonymousCredentials
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from notifications.providers.base import (
    LookupResult,
    OutgoingMessage,
    PermanentProviderError,
    ProviderError,
    SendResult,
    TransientProviderError,
    UnknownOutcomeError,
)
from personalization.selectors import push_subscription_keys, push_token_is_web

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
        """Send to every active Android and iOS token (web ones are the webpush provider's)."""
        tokens = [t for t in message.tokens or (message.to,) if not push_token_is_web(t)]
        if not tokens:
            # The shopper's devices are browsers: the next provider of the channel takes the message.
            raise TransientProviderError("no FCM device among the shopper's devices")
        return _send_each(message, [(t, functools.partial(self._send_one, message, t)) for t in tokens])

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        # FCM has no message lookup: an unknown push waits for an operator, never a blind resend.
        return None


def _send_each(message: OutgoingMessage, calls: Sequence[tuple[str, Callable[[], str]]]) -> SendResult:
    """Call each device's send; success when at least one device accepted the message.

    A device that already got the message is never sent it again, so once one token succeeded the
    transient failures of the others are logged in the response rather than retried. Tokens answered
    with a permanent error are dead (``dead_tokens``, or the error's ``subject``: retired by the ledger).
    """
    accepted: dict[str, str] = {}
    dead: list[str] = []
    errors: list[ProviderError] = []
    for token, call in calls:
        try:
            accepted[token] = call()
        except PermanentProviderError as error:
            if error.subject == token:
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


def _body(error: exceptions.FirebaseError) -> dict[str, Any]:
    response = error.http_response
    if response is None:
        return {}
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return {"status": response.status_code}
    return body


class WebPushProvider:
    """Web Push (RFC 8030) straight to each browser's push service, encrypted to the subscription
    (RFC 8291, aes128gcm) and signed with our VAPID key (RFC 8292), through the real ``pywebpush``.

    Sends to the shopper's web tokens only (their keys read in one query); the FCM provider sends to
    the others. A push service answering 404/410 has dropped the subscription: the token is dead. No
    lookup: a push service keeps no record we could ask."""

    can_lookup = False
    channel = "push"

    def __init__(self, *, name: str, vapid_private_key: str, subject: str, ttl: int, timeout: float) -> None:
        self.name = name
        self.vapid = Vapid.from_string(private_key=vapid_private_key)
        self.subject, self.ttl, self.timeout = subject, ttl, timeout
        self.session = requests.Session()
        self.session.trust_env = bool(getproxies())
        self.session.mount("https://", requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=100))

    def _send_one(self, message: OutgoingMessage, token: str, keys: dict[str, str]) -> str:
        payload = {
            "title": message.subject,
            "body": message.text,
            "data": {"delivery_id": message.delivery_id, **message.data},
        }
        try:
            response = webpush(
                subscription_info={"endpoint": token, "keys": keys},
                data=json.dumps(payload),
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self.subject},  # a new dict: pywebpush adds aud and exp to it
                ttl=self.ttl,
                timeout=self.timeout,
                requests_session=self.session,
                headers={"Urgency": "normal"},
            )
        except WebPushException as error:
            status = error.response.status_code if error.response is not None else 0
            body = {
                "status": status,
                "text": (error.response.text if error.response is not None else "")[:300],
            }
            if status in (404, 410):
                raise PermanentProviderError(str(error), subject=token, response=body) from error
            if status in (400, 413):
                raise PermanentProviderError(str(error), response=body) from error
            raise TransientProviderError(str(error), response=body) from error
        except requests.ConnectionError as error:
            raise TransientProviderError(str(error)) from error
        except requests.Timeout as error:
            raise UnknownOutcomeError(str(error)) from error
        except (ValueError, TypeError) as error:  # keys that are not a P-256 point and a 16-byte secret
            raise PermanentProviderError(str(error), subject=token) from error
        assert isinstance(response, requests.Response)
        return str(response.headers.get("Location") or token)

    def send(self, message: OutgoingMessage) -> SendResult:
        tokens = [t for t in message.tokens or (message.to,) if push_token_is_web(t)]
        if not tokens:
            # The shopper's devices are FCM's: the next provider of the channel takes the message.
            raise TransientProviderError("no web push subscription among the shopper's devices")
        keys = push_subscription_keys(tokens=tokens)
        calls = [(t, functools.partial(self._send_one, message, t, keys.get(t, {}))) for t in tokens]
        return _send_each(message, calls)

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        return None
