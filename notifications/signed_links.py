"""Signed tracking and unsubscribe links (django.core.signing, keyed by SECRET_KEY).

A token carries what the link acts on; the HTTP side (tracking/api/links.py) acts only on a token whose
signature checks, so a forged open, click or unsubscribe writes nothing and a click can only redirect to a
target we signed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing

OPEN_SALT = "ie.track.open"
CLICK_SALT = "ie.track.click"
UNSUBSCRIBE_SALT = "ie.unsubscribe"


def _url(path: str) -> str:
    return f"{settings.PUBLIC_URL}{path}"


def open_pixel_url(*, delivery_id: str) -> str:
    return _url(f"/t/o/{signing.dumps({'d': delivery_id}, salt=OPEN_SALT, compress=True)}.gif")


def click_url(*, delivery_id: str, target: str) -> str:
    return _url(f"/t/c/{signing.dumps({'d': delivery_id, 'u': target}, salt=CLICK_SALT, compress=True)}")


def unsubscribe_url(*, delivery_id: str, profile_id: int, channel: str = "email") -> str:
    token = signing.dumps({"d": delivery_id, "p": profile_id, "c": channel}, salt=UNSUBSCRIBE_SALT)
    return _url(f"/u/{token}")


def token_load(*, token: str, salt: str) -> dict[str, Any]:
    """The token's payload; raises ``signing.BadSignature`` when forged or damaged."""
    payload = signing.loads(token, salt=salt)
    if not isinstance(payload, dict):
        raise signing.BadSignature("not a link token")
    return payload
