"""One small interface per channel, and the three ways a send can go wrong.

A provider turns an :class:`OutgoingMessage` into one call to the outside world and answers with a
:class:`SendResult`, or raises one of:

- :class:`TransientProviderError`: the provider certainly did not accept the message and may later
  (connection refused, 429, 5xx). Retried with backoff, possibly on the next provider.
- :class:`PermanentProviderError`: it never will (invalid number, hard bounce, unregistered token).
  Failed at once; ``subject`` says which contact point to suppress.
- :class:`UnknownOutcomeError`: the request left but no answer came back (a read timeout). The message
  may have been accepted, so sending again could duplicate it; the delivery becomes ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: str
    channel: str
    to: str
    subject: str = ""
    text: str = ""
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    # Push: every active token of the shopper; ``to`` is the first.
    tokens: tuple[str, ...] = ()
    status_callback: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    response: dict[str, Any] = field(default_factory=dict)
    # Push tokens the provider reported as dead while the message still reached another token.
    dead_tokens: tuple[str, ...] = ()


@dataclass(frozen=True)
class LookupResult:
    """What the provider knows about a message we may or may not have sent."""

    found: bool
    provider_message_id: str = ""
    status: str = ""
    response: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    kind = "transient"

    def __init__(self, message: str, *, response: dict[str, Any] | None = None, subject: str = "") -> None:
        super().__init__(message)
        self.response = response or {}
        # For permanent errors: "address", "phone" or a push token that must not be used again.
        self.subject = subject


class TransientProviderError(ProviderError):
    kind = "transient"


class PermanentProviderError(ProviderError):
    kind = "permanent"


class UnknownOutcomeError(ProviderError):
    kind = "unknown"


class Provider(Protocol):
    name: str
    channel: str
    # True when ``lookup`` can answer: an interrupted send is then settled by asking, not by an operator.
    can_lookup: bool

    def send(self, message: OutgoingMessage) -> SendResult: ...

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        """Ask the provider whether it accepted ``message``; None when it has no way to tell."""
        ...
