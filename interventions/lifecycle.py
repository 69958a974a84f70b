"""Intervention lifecycle events (SPEC §3.3), written to the outbox in the caller's transaction.

Every change of an intervention's state that other services care about — created, suppressed, queued,
sent, delivered, engaged, expired, cancelled — becomes one ``intervention-events`` message keyed by the
shopper's ``user_id`` (so one shopper's events stay ordered on one partition). The outbox row commits or
rolls back with the change it describes; the relay publishes it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from django.utils import timezone

from messaging.services import outbox_enqueue_bulk

TOPIC = "intervention-events"

EVENT_TYPES = frozenset(
    {
        "intervention.created",
        "intervention.suppressed",
        "intervention.scheduled",
        "intervention.cancelled",
        "intervention.expired",
        "delivery.queued",
        "delivery.sent",
        "delivery.delivered",
        "delivery.failed",
        "delivery.cancelled",
        "engagement.displayed",
        "engagement.opened",
        "engagement.clicked",
        "engagement.dismissed",
        "engagement.bounced",
        "engagement.complained",
        "engagement.unsubscribed",
    }
)


class InterventionFacts(Protocol):
    """What an event payload reads from an intervention: a model instance, or the decision path's
    not-yet-written row (which skips building a model instance per decision)."""

    @property
    def pk(self) -> Any: ...
    @property
    def user_id(self) -> str: ...
    @property
    def campaign_id(self) -> int: ...
    @property
    def variant_id(self) -> int | None: ...
    @property
    def channel(self) -> str: ...
    @property
    def trigger_event_id(self) -> str: ...
    @property
    def trigger(self) -> str: ...
    @property
    def is_holdout(self) -> bool: ...


def intervention_event_payload(
    *,
    intervention: InterventionFacts,
    type: str,
    channel: str = "",
    reason: str = "",
    extra: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of one ``intervention-events`` message.

    ``reason`` is carried for suppressions, cancellations and failures; ``extra`` adds fields (a
    delivery id, a provider) without changing the contract's own names.
    """
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": type,
        "occurred_at": (occurred_at or timezone.now()).isoformat(),
        "intervention_id": str(intervention.pk),
        "user_id": intervention.user_id,
        "campaign_id": str(intervention.campaign_id),
        "variant_id": str(intervention.variant_id) if intervention.variant_id is not None else None,
        "channel": channel or intervention.channel or None,
        "trigger_event_id": intervention.trigger_event_id,
        "trigger": intervention.trigger,
        "is_holdout": intervention.is_holdout,
    }
    if reason:
        payload["reason"] = reason
    if extra:
        payload.update(extra)
    return payload


def intervention_events_enqueue(*, events: Iterable[tuple[InterventionFacts, str, dict[str, Any]]]) -> None:
    """Write one outbox row per (intervention, type, options) inside the caller's transaction.

    ``options`` are the keyword arguments of :func:`intervention_event_payload` other than the
    intervention and the type (``channel``, ``reason``, ``extra``, ``occurred_at``). Events without
    their own ``occurred_at`` share one timestamp: they happen in one transaction.
    """
    now = timezone.now()
    messages = [
        (
            TOPIC,
            intervention.user_id,
            intervention_event_payload(
                intervention=intervention, type=event_type, **{"occurred_at": now, **options}
            ),
        )
        for intervention, event_type, options in events
    ]
    if messages:
        outbox_enqueue_bulk(messages=messages)


# --- Opt-outs: shopper-level events ---


def shopper_event_enqueue(*, user_id: str, type: str, channel: str, reason: str = "") -> None:
    """One ``intervention-events`` message about the shopper rather than an intervention (an opt-out
    with no message it answers): the contract's intervention fields are null, ``channel`` says which."""
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": type,
        "occurred_at": timezone.now().isoformat(),
        "intervention_id": None,
        "user_id": user_id,
        "campaign_id": None,
        "variant_id": None,
        "channel": channel,
        "trigger_event_id": None,
        "trigger": None,
        "is_holdout": False,
    }
    if reason:
        payload["reason"] = reason
    outbox_enqueue_bulk(messages=[(TOPIC, user_id, payload)])
