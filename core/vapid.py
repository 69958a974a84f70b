"""VAPID keys (RFC 8292) for Web Push: made by ``bootstrap``, used by notifications to sign, and shown
(the public half) to pages that subscribe. Kept here because both the gateway's demo page and
notifications need the public key and neither may import the other."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid
from py_vapid.utils import b64urlencode


def vapid_private_key_generate() -> str:
    """A new VAPID key: a P-256 private key, its 32 raw bytes base64url (``WEBPUSH_VAPID_PRIVATE_KEY``)."""
    vapid = Vapid()
    vapid.generate_keys()
    number: int = vapid.private_key.private_numbers().private_value
    return str(b64urlencode(number.to_bytes(32, "big")))


def vapid_application_server_key(private_key: str) -> str:
    """The public half of a VAPID key as browsers take it (``applicationServerKey``: the uncompressed
    point, base64url); the JS client subscribes with it, and push services check our signature with it.
    "" without a key."""
    if not private_key:
        return ""
    public = Vapid.from_string(private_key=private_key).public_key
    return str(b64urlencode(public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)))
