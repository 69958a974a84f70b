"""Short-lived, signed, single-use WebSocket tickets bound to one user and one session.

A trusted backend asks for a ticket (``POST /api/v1/ws-tickets``) and hands it to the browser, which
connects to ``/ws?ticket=…``. The ticket is a ``django.core.signing`` token (HMAC with SECRET_KEY,
timestamped) carrying the user id, the session id, the rooms the socket may join and a random nonce: a
socket joins only rooms its ticket names, so the backend that issues tickets decides who hears a room.
Redeeming it claims the nonce with ``SET NX EX`` in Redis: the first socket wins, a replay of the same
ticket is refused, on every daphne process. Tickets are credentials: nothing logs them, only
``ticket_fingerprint``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import timezone

from core.errors import ApplicationError
from core.redis import redis_sync
from gateway.realtime import room_allowed
from gateway.stores import apipelined

_SALT = "delivery.ws-ticket"
_NONCE_KEY = "ie:ws:ticket:{nonce}"
MAX_ID_LENGTH = 128


class TicketRefused(ApplicationError):
    status_code = 401


@dataclass(frozen=True)
class TicketClaims:
    user_id: str
    session_id: str
    nonce: str
    rooms: frozenset[str] = frozenset()


def ticket_fingerprint(ticket: str) -> str:
    """What logs may show of a ticket."""
    return hashlib.sha256(ticket.encode()).hexdigest()[:12]


def ws_ticket_issue(*, user_id: str, session_id: str, rooms: Sequence[str] = ()) -> tuple[str, datetime]:
    """A new ticket and when it expires; the socket it opens may join ``rooms`` and no others."""
    if not user_id or len(user_id) > MAX_ID_LENGTH or len(session_id) > MAX_ID_LENGTH:
        raise ApplicationError("user_id is required; ids are at most 128 characters", code="invalid")
    wanted = sorted(set(rooms))
    refused = [room for room in wanted if not room_allowed(room)]
    if refused:
        raise ApplicationError(
            "A room name must match the allowed prefixes (WS_ROOM_PREFIXES).",
            code="room_forbidden",
            details={"rooms": refused},
        )
    if len(wanted) > settings.WS_MAX_ROOMS_PER_CONNECTION:
        raise ApplicationError(
            f"A ticket names at most {settings.WS_MAX_ROOMS_PER_CONNECTION} rooms.",
            code="too_many_rooms",
            details={"rooms": len(wanted), "max_rooms": settings.WS_MAX_ROOMS_PER_CONNECTION},
        )
    claims: dict[str, Any] = {"u": user_id, "s": session_id, "n": secrets.token_urlsafe(16)}
    if wanted:
        claims["r"] = wanted
    ticket = signing.dumps(claims, salt=_SALT, compress=False)
    return ticket, timezone.now() + timedelta(seconds=settings.WS_TICKET_TTL_SECONDS)


def _claims(ticket: str) -> TicketClaims:
    if not ticket:
        raise TicketRefused("A ticket is required", code="ticket_missing")
    try:
        data = signing.loads(ticket, salt=_SALT, max_age=settings.WS_TICKET_TTL_SECONDS)
    except signing.SignatureExpired:
        raise TicketRefused("The ticket has expired", code="ticket_expired") from None
    except signing.BadSignature:
        raise TicketRefused("The ticket is not valid", code="ticket_invalid") from None
    return TicketClaims(
        user_id=data["u"], session_id=data["s"], nonce=data["n"], rooms=frozenset(data.get("r", ()))
    )


async def aws_ticket_redeem(*, ticket: str) -> TicketClaims:
    """Verify and consume a ticket; raises ``TicketRefused`` (missing, invalid, expired, reused)."""
    claims = _claims(ticket)
    key = _NONCE_KEY.format(nonce=claims.nonce)

    def build(pipe: Any) -> None:
        # The nonce is remembered a little longer than the ticket lives, so it cannot be replayed late.
        pipe.set(key, "1", nx=True, ex=settings.WS_TICKET_TTL_SECONDS + 5)

    # Pipelined with the other handshakes of the same moment (a reconnect storm after a deploy).
    (claimed,) = await apipelined(build)
    if isinstance(claimed, Exception):
        raise claimed
    if not claimed:
        raise TicketRefused("The ticket was already used", code="ticket_reused")
    return claims


def ws_ticket_redeem(*, ticket: str) -> TicketClaims:
    claims = _claims(ticket)
    claimed = redis_sync().set(
        _NONCE_KEY.format(nonce=claims.nonce), "1", nx=True, ex=settings.WS_TICKET_TTL_SECONDS + 5
    )
    if not claimed:
        raise TicketRefused("The ticket was already used", code="ticket_reused")
    return claims
