"""The one writer of interventions and deliveries: every change of their state, and its lifecycle event.

A state change and the ``intervention-events`` outbox row that announces it (``interventions.lifecycle``)
are written in the same transaction, so the event is published if and only if the change committed. Each
section below belongs to one caller's job and states what runs in which transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.bulk import dicts_insert, rows_insert
from interventions.lifecycle import InterventionFacts, intervention_events_enqueue
from interventions.models import Delivery, Intervention
from interventions.selectors import interventions_open_for_exit
from personalization.models import Channel
from personalization.services import profile_onsite_seq_allocate, profiles_lock

# --- Decisions: batch writes, cancels, releases, expiry ------------------------------------------------
#
# Used by the decision path (delivery). Its batch runs in ONE transaction: exit events cancel open
# interventions (``interventions_cancel_on_exit``), then the decided interventions, their deliveries and
# lifecycle events are inserted with statements that read nothing back (``interventions_batch_insert``),
# so they wait in one pipeline with the COMMIT. The unique (campaign, trigger event) key makes a replayed
# decision fail to insert instead of being written twice. Beat releases due scheduled interventions and
# expires stale ones, each claim under SKIP LOCKED so two workers never take one row; a released
# intervention is handed off by the caller after commit.

# (intervention, event type, options): what ``intervention_events_enqueue`` writes.
LifecycleEvent = tuple[InterventionFacts, str, dict[str, Any]]


@dataclass(slots=True)
class DecidedIntervention:
    """An intervention the decision path has decided, not yet written: plain attributes named like the
    model's columns. Building a Django model instance per decision (≈ 1.7 per event) cost more than the
    rest of the decision, and the rows are written as JSON anyway."""

    id: UUID
    campaign_id: int
    variant_id: int | None
    profile_id: int
    user_id: str
    session_id: str
    cart_id: str
    trigger_event_id: str
    trigger: str
    context: dict[str, Any]
    status: str = Intervention.Status.PENDING.value
    suppression_reason: str = ""
    is_holdout: bool = False
    channel: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    scheduled_for: datetime | None = None
    expires_at: datetime | None = None

    @property
    def pk(self) -> UUID:
        return self.id


def interventions_batch_insert(
    *,
    interventions: Sequence[DecidedIntervention],
    deliveries: Sequence[tuple[UUID, DecidedIntervention]],
    events: Sequence[LifecycleEvent],
) -> None:
    """Insert a batch's decided interventions, the ``(delivery id, intervention)`` deliveries queued on
    their channel, and their lifecycle events, in the caller's transaction: three statements that read
    nothing back, so they may wait in a pipeline with the transaction's COMMIT.

    A concurrent consumer (a rebalance) that decided one of these (campaign, trigger event) pairs first
    makes the insert fail on ``intervention_once_per_event``; the caller rolls back and decides again."""
    now = timezone.now().isoformat()
    dicts_insert(
        Intervention,
        [
            {
                "id": str(i.id),
                "campaign_id": i.campaign_id,
                "variant_id": i.variant_id,
                "profile_id": i.profile_id,
                "user_id": i.user_id,
                "session_id": i.session_id,
                "cart_id": i.cart_id,
                "trigger_event_id": i.trigger_event_id,
                "trigger": i.trigger,
                "status": i.status,
                "suppression_reason": i.suppression_reason,
                "is_holdout": i.is_holdout,
                "channel": i.channel,
                "content": i.content,
                "context": i.context,
                "seq": i.seq,
                "scheduled_for": _iso(i.scheduled_for),
                "expires_at": _iso(i.expires_at),
                "created_at": now,
                "updated_at": now,
            }
            for i in interventions
        ],
    )
    dicts_insert(
        Delivery,
        [
            {
                "id": str(delivery_id),
                "intervention_id": str(intervention.id),
                "channel": intervention.channel,
                "queued_at": now,
                "updated_at": now,
            }
            for delivery_id, intervention in deliveries
        ],
    )
    intervention_events_enqueue(events=events)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def intervention_insert(
    *, intervention: Intervention, delivery: Delivery | None, events: Sequence[LifecycleEvent]
) -> bool:
    """Insert one decided intervention, with its delivery (if queued) and lifecycle events, in the
    caller's transaction — unless its (campaign, trigger event) was decided already: then nothing is
    written and the answer is False. Fields must hold their final values (see ``core.bulk.rows_insert``)."""
    if not rows_insert(Intervention, [intervention], ignore_conflicts=True):
        return False
    if delivery is not None:
        rows_insert(Delivery, [delivery])
    intervention_events_enqueue(events=events)
    return True


def interventions_cancel_on_exit(*, exits: Mapping[tuple[str, int], tuple[datetime, str]]) -> int:
    """Cancel the pending or scheduled interventions of each ``(user_id, campaign_id)`` in ``exits``,
    which maps it to the time and type of its exit event; returns how many. Runs in the caller's
    transaction (rows locked ``FOR UPDATE``): queued deliveries are cancelled and
    ``intervention.cancelled`` written with reason ``exit_event:<type>``.

    Only interventions triggered before the exit event are cancelled, so a replayed old checkout never
    cancels the intervention of a newer cart.
    """
    if not exits:
        return 0
    cancelled: list[Intervention] = []
    for intervention in interventions_open_for_exit(pairs=exits.keys()):
        exit_event = exits.get((intervention.user_id, intervention.campaign_id))
        trigger_at = _trigger_at(intervention)
        if exit_event is None or (trigger_at is not None and trigger_at > exit_event[0]):
            continue
        intervention.status = Intervention.Status.CANCELLED
        intervention.updated_at = timezone.now()
        cancelled.append(intervention)
    if not cancelled:
        return 0
    Intervention.objects.bulk_update(cancelled, ["status", "updated_at"])
    Delivery.objects.filter(intervention__in=cancelled, status__in=[Delivery.Status.QUEUED]).update(
        status=Delivery.Status.CANCELLED, resolved_at=timezone.now(), updated_at=timezone.now()
    )
    intervention_events_enqueue(
        events=[
            (
                intervention,
                "intervention.cancelled",
                {"reason": f"exit_event:{exits[(intervention.user_id, intervention.campaign_id)][1]}"},
            )
            for intervention in cancelled
        ]
    )
    return len(cancelled)


def _trigger_at(intervention: Intervention) -> datetime | None:
    raw = (intervention.context or {}).get("trigger_at")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Released:
    """What ``interventions_release_due`` changed: the deliveries it queued (their interventions now
    pending, loaded) and how many interventions it cancelled."""

    deliveries: list[Delivery]
    cancelled: int


def interventions_release_due(*, limit: int = 500, now: datetime | None = None) -> Released:
    """Release scheduled interventions whose time has come, in one transaction: queue their delivery (an
    on-site one gets the shopper's next ``seq``), or cancel them when ``require_open_cart`` and the shopper
    has ordered since the trigger. Claimed with SKIP LOCKED, so several beat workers never release one
    twice. Handing the deliveries off is the caller's, after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Intervention.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Intervention.Status.SCHEDULED, scheduled_for__lte=now)
            .select_related("campaign", "profile")
            .order_by("scheduled_for")[:limit]
        )
        if not due:
            return Released(deliveries=[], cancelled=0)
        profiles = profiles_lock(user_ids=[i.user_id for i in due])
        cancelled: list[Intervention] = []
        released: list[Intervention] = []
        for intervention in due:
            profile = profiles[intervention.user_id]
            trigger_at = _trigger_at(intervention) or intervention.created_at
            if intervention.campaign.require_open_cart and (
                profile.last_order_at is not None and profile.last_order_at >= trigger_at
            ):
                intervention.status = Intervention.Status.CANCELLED
                cancelled.append(intervention)
            else:
                intervention.status = Intervention.Status.PENDING
                released.append(intervention)
            intervention.updated_at = now
        counts: dict[str, int] = defaultdict(int)
        for intervention in released:
            if intervention.channel == Channel.ONSITE:
                counts[intervention.user_id] += 1
        first = profile_onsite_seq_allocate(profiles=profiles, counts=counts) if counts else {}
        for intervention in released:
            if intervention.channel == Channel.ONSITE:
                intervention.seq = first[intervention.user_id]
                first[intervention.user_id] += 1
        Intervention.objects.bulk_update(due, ["status", "seq", "updated_at"])
        deliveries = [Delivery(id=uuid.uuid4(), intervention=i, channel=i.channel) for i in released]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        intervention_events_enqueue(
            events=[
                *[(i, "intervention.cancelled", {"reason": "cart_closed"}) for i in cancelled],
                *[
                    (d.intervention, "delivery.queued", {"extra": {"delivery_id": str(d.pk)}})
                    for d in deliveries
                ],
            ]
        )
    return Released(deliveries=deliveries, cancelled=len(cancelled))


def interventions_expire(*, limit: int = 1000, now: datetime | None = None) -> int:
    """Mark pending interventions past their expiry as expired, with ``intervention.expired`` events and
    their queued deliveries cancelled, in one transaction (claimed with SKIP LOCKED); returns how many.

    Only those not handed to a provider: a sent email cannot be unsent, and its receipt may come late.
    """
    now = now or timezone.now()
    with transaction.atomic():
        handed_over = Delivery.objects.filter(
            status__in=[
                Delivery.Status.SENDING,
                Delivery.Status.SENT,
                Delivery.Status.DELIVERED,
                Delivery.Status.UNKNOWN,
            ]
        ).values("intervention_id")
        stale = list(
            Intervention.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Intervention.Status.PENDING, expires_at__lt=now)
            .filter(~Q(pk__in=handed_over))
            .order_by("expires_at")[:limit]
        )
        if not stale:
            return 0
        for intervention in stale:
            intervention.status = Intervention.Status.EXPIRED
            intervention.updated_at = now
        Intervention.objects.bulk_update(stale, ["status", "updated_at"])
        Delivery.objects.filter(intervention__in=stale, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.CANCELLED, resolved_at=now, updated_at=now
        )
        intervention_events_enqueue(events=[(i, "intervention.expired", {}) for i in stale])
    return len(stale)
