"""The only writers of Intervention and Delivery rows.

Each service runs in its caller's transaction unless it says otherwise; the outbox messages that describe a
change (interventions/lifecycle.py) are written in that same transaction, so a change and its message
commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from django.utils import timezone

from interventions.models import Delivery, Intervention

# --- Engagement: delivered, displayed, opened, clicked ---

# Delivery statuses a proof of delivery (a receipt, a display, an open, a click) moves to ``delivered``.
_UNDELIVERED = (
    Delivery.Status.QUEUED,
    Delivery.Status.SENDING,
    Delivery.Status.SENT,
    Delivery.Status.UNKNOWN,
)


def interventions_lock_for_engagement(*, intervention_ids: Iterable[UUID]) -> dict[UUID, Intervention]:
    """The interventions among ``intervention_ids`` that exist, locked (``FOR UPDATE OF`` the intervention
    rows only) in id order, so that two batches naming the same interventions queue rather than deadlock.
    Must run inside the caller's transaction (Django refuses ``FOR UPDATE`` outside one): the lock lasts
    until it ends."""
    return {
        i.pk: i
        for i in Intervention.objects.select_for_update(of=("self",))
        .filter(pk__in=set(intervention_ids))
        .order_by("pk")
    }


def interventions_mark_delivered(*, marks: Sequence[tuple[Intervention, datetime, str]]) -> None:
    """For each ``(intervention, occurred_at, channel)`` (interventions locked by the caller, not yet
    delivered): the intervention is delivered at ``occurred_at`` (its status moves to ``delivered`` only
    from pending or scheduled), and so is its open delivery on ``channel``, if it has one.

    One UPDATE for the interventions and one per delivery; a replay finds ``delivered_at`` set and the
    delivery no longer open, and the callers only mark what has no ``delivered_at`` yet.
    """
    if not marks:
        return
    now = timezone.now()
    for intervention, occurred_at, _channel in marks:
        intervention.delivered_at = occurred_at
        if intervention.status in (Intervention.Status.PENDING, Intervention.Status.SCHEDULED):
            intervention.status = Intervention.Status.DELIVERED
        intervention.updated_at = now
    Intervention.objects.bulk_update([m[0] for m in marks], ["delivered_at", "status", "updated_at"])
    for intervention, occurred_at, channel in marks:
        Delivery.objects.filter(
            intervention_id=intervention.pk, channel=channel, status__in=_UNDELIVERED
        ).update(status=Delivery.Status.DELIVERED, delivered_at=occurred_at, updated_at=timezone.now())
