"""Signed tracking and unsubscribe links (django.core.signing, keyed by SECRET_KEY).

A token carries what the link acts on; the HTTP side (notifications/api/links.py) acts only on a token whose
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


def _sign(payload: dict[str, Any], *, salt: str) -> str:
    # Not timestamped: the same delivery always gets the same links, so a rebuilt message is identical
    # (the send ledger recognises an earlier attempt by its body) and links in old mail keep working.
    return signing.Signer(salt=salt).sign_object(payload, compress=True)


def open_pixel_url(*, delivery_id: str) -> str:
    return _url(f"/t/o/{_sign({'d': delivery_id}, salt=OPEN_SALT)}.gif")


def click_url(*, delivery_id: str, target: str) -> str:
    return _url(f"/t/c/{_sign({'d': delivery_id, 'u': target}, salt=CLICK_SALT)}")


def unsubscribe_url(*, delivery_id: str, profile_id: int, channel: str = "email") -> str:
    return _url(f"/u/{_sign({'d': delivery_id, 'p': profile_id, 'c': channel}, salt=UNSUBSCRIBE_SALT)}")


def token_load(*, token: str, salt: str) -> dict[str, Any]:
    """The token's payload; raises ``signing.BadSignature`` when forged or damaged."""
    payload = signing.Signer(salt=salt).unsign_object(token)
    if not isinstance(payload, dict):
        raise signing.BadSignature("not a link token")
    return payload
