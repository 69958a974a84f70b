"""A local Web Push service (RFC 8030) that does what a browser vendor's does with a message, and what
the browser does next: checks the VAPID signature (RFC 8292), decrypts the aes128gcm body (RFC 8188,
RFC 8291) with the subscription's private key, and keeps what it read.

``subscribe()`` plays the browser: it makes a subscription the way ``PushManager.subscribe`` does (a
P-256 key pair and a 16-byte auth secret, an endpoint on this server) and returns its ``toJSON()``.
A subscription marked ``gone`` answers 410, as a push service does once the browser unsubscribed.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class _Subscription:
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    application_server_key: str = ""
    gone: bool = False


@dataclass
class PushServiceState:
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    fail_status: int = 0  # non-zero: every push answered with it (a push service down)
    lock: threading.Lock = field(default_factory=threading.Lock)


def vapid_verify(authorization: str, *, origin: str, application_server_key: str = "") -> dict[str, Any]:
    """The claims of a valid ``Authorization: vapid t=<JWT>, k=<key>`` header for ``origin``; raises
    ValueError otherwise (bad signature, wrong audience, expired, another key than subscribed with)."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError(f"not a vapid authorization: {scheme!r}")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    token, key = fields["t"], fields["k"]
    if application_server_key and key != application_server_key:
        raise ValueError("signed with another key than the subscription's applicationServerKey")
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(_unb64url(header_b64))
    if header.get("alg") != "ES256":
        raise ValueError(f"alg {header.get('alg')!r}")
    signature = _unb64url(signature_b64)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64url(key))
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise ValueError("bad signature") from error
    claims: dict[str, Any] = json.loads(_unb64url(claims_b64))
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
    if int(claims.get("exp", 0)) <= time.time() or int(claims["exp"]) > time.time() + 24 * 3600:
        raise ValueError("exp missing, past, or more than 24 hours ahead")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError("sub must be a mailto: or https: contact")
    return claims


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        subscription_id = self.path.rsplit("/", 1)[-1]
        with state.lock:
            subscription = state.subscriptions.get(subscription_id)
            fail_status = state.fail_status
        if fail_status:
            self._reply(fail_status)
            return
        if subscription is None or subscription.gone:
            self._reply(410 if subscription is not None else 404)
            return
        try:
            if self.headers.get("TTL") is None:
                raise ValueError("no TTL header (RFC 8030 5.2)")
            if self.headers.get("Content-Encoding") != "aes128gcm":
                raise ValueError(f"Content-Encoding {self.headers.get('Content-Encoding')!r}")
            claims = vapid_verify(
                self.headers.get("Authorization", ""),
                origin=self.server.origin,
                application_server_key=subscription.application_server_key,
            )
            plaintext = http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth_secret,
                version="aes128gcm",
            )
        except (ValueError, KeyError, http_ece.ECEException) as error:
            with state.lock:
                state.refused.append({"subscription_id": subscription_id, "reason": str(error)})
            self._reply(401 if "signature" in str(error) or "vapid" in str(error) else 400)
            return
        message_id = uuid.uuid4().hex
        with state.lock:
            state.received.append(
                {
                    "subscription_id": subscription_id,
                    "message_id": message_id,
                    "payload": json.loads(plaintext),
                    "ttl": int(self.headers["TTL"]),
                    "urgency": self.headers.get("Urgency", ""),
                    "claims": claims,
                }
            )
        self._reply(201, {"Location": f"{self.server.origin}/message/{message_id}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: PushServiceState) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.origin = f"http://{address[0]}:{self.server_address[1]}"


class PushServiceStub:
    """The push service in a background thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = PushServiceState()
        self.server = _Server((host, port), self.state)
        self.url = self.server.origin
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> PushServiceStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def subscribe(self, *, application_server_key: str = "") -> dict[str, Any]:
        """A new subscription, as ``PushSubscription.toJSON()`` gives it to the page."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth_secret = os.urandom(16)
        subscription_id = uuid.uuid4().hex
        with self.state.lock:
            self.state.subscriptions[subscription_id] = _Subscription(
                private_key=private_key,
                auth_secret=auth_secret,
                application_server_key=application_server_key,
            )
        public = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.url}/push/{subscription_id}",
            "expirationTime": None,
            "keys": {"p256dh": _b64url(public), "auth": _b64url(auth_secret)},
        }

    def unsubscribe(self, endpoint: str) -> None:
        with self.state.lock:
            self.state.subscriptions[endpoint.rsplit("/", 1)[-1]].gone = True

    def fail(self, status: int) -> None:
        with self.state.lock:
            self.state.fail_status = status

    @property
    def received(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.received)

    @property
    def refused(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.refused)
