"""The one writer of interventions and deliveries: every change of their state, and its lifecycle event.

A state change and the ``intervention-events`` outbox row that announces it (``interventions.lifecycle``)
are written in the same transaction, so the event is published if and only if the change committed. Each
section below belongs to one caller's job and states what runs in which transaction.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from core.bulk import dicts_insert, rows_insert
from core.errors import ConflictError
from interventions.lifecycle import TOPIC, InterventionFacts, intervention_events_enqueue
from interventions.models import Delivery, Intervention
from interventions.selectors import interventions_open_for_exit
from messaging.services import outbox_messages_rekey
from personalization.models import Channel
from personalization.services import profile_onsite_seq_allocate, profiles_lock

# --- Deliveries: the send ledger ---------------------------------------------------------------------
#
# Used by notifications. A worker claims a row (``deliveries_claim``, committed before any provider call),
# calls the provider, and writes the outcome with one of the ``delivery_mark_*`` services; a row left
# ``sending`` or ``unknown`` is settled by asking the provider (``delivery_mark_unfound`` when it was not
# found), never by sending again. Every transition is a conditional UPDATE on the row's status where a
# race is possible, so a duplicate task, a late answer or a sweep running beside a worker changes nothing.
#
# QuerySet.update() does not touch auto_now fields; every write sets ``updated_at`` itself (``Now()``: the
# database's clock), because the sweeps read it. The send path's services join the caller's transaction
# without a savepoint (a savepoint is two more round trips per outcome on the worker's hot path); called
# alone, each is its own transaction.


@dataclass(frozen=True)
class DeliverySent:
    """What a provider answered for one delivery it accepted."""

    delivery: Delivery
    provider: str
    provider_message_id: str
    response: dict[str, Any]


def deliveries_claim(*, delivery_ids: Sequence[UUID | str], now: datetime) -> list[UUID]:
    """``queued`` and due → ``sending``, attempts + 1, for a whole batch in ONE conditional UPDATE; returns
    the ids this caller moved. Call outside a transaction: the claim commits at once, before any provider
    call.

    Exactly one caller wins each row; a duplicate or redelivered task, or one racing another worker, gets
    nothing back for it.
    """
    ids = list({UUID(str(delivery_id)) for delivery_id in delivery_ids})
    # A retry's countdown may fire a moment before next_attempt_at on a worker with a drifting clock.
    due_by = now + timedelta(seconds=1)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Delivery._meta.db_table}
               SET status = %s, attempts = attempts + 1, sending_at = %s, next_attempt_at = NULL,
                   updated_at = now()
             WHERE id = ANY(%s) AND status = %s AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
            RETURNING id
            """,  # noqa: S608  (table name from the model, values as parameters)
            [Delivery.Status.SENDING, now, ids, Delivery.Status.QUEUED, due_by],
        )
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic(savepoint=False)
def deliveries_mark_sent(*, sent: Sequence[DeliverySent]) -> None:
    """``sending`` (or ``unknown``: a send that outlived the sending timeout may have been marked so by the
    sweeper) → ``sent`` in ONE UPDATE, and one outbox insert for their ``delivery.sent`` events."""
    if not sent:
        return
    # The claim committed synchronously; an outcome may commit without waiting for the WAL flush. If
    # PostgreSQL crashed in that instant the rows would be back at "sending" and be settled like a worker
    # crash (asked of the provider, or "unknown") — never sent twice — so the fsync wait is not needed.
    # SET LOCAL lasts until this transaction ends, whichever statement it comes before.
    # One statement for the batch, its values as one JSON parameter: Django's bulk_update builds a CASE
    # per field and row, which cost more CPU than the sends themselves (≈ 5 ms per delivery).
    rows = [
        {
            "id": str(item.delivery.pk),
            "provider": item.provider,
            "message_id": item.provider_message_id[:200],
            "response": item.response,
        }
        for item in sent
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(
            f"""
            UPDATE {Delivery._meta.db_table} AS d
               SET status = %s, provider = v.provider, provider_message_id = v.message_id,
                   provider_response = v.response, sent_at = %s, last_error = '', error_kind = '',
                   updated_at = now()
              FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, provider text, message_id text, response jsonb)
             WHERE d.id = v.id AND d.status IN (%s, %s)
            """,  # noqa: S608  (table name from the model, values as parameters)
            [
                Delivery.Status.SENT,
                timezone.now(),
                json.dumps(rows, cls=DjangoJSONEncoder),
                Delivery.Status.SENDING,
                Delivery.Status.UNKNOWN,
            ],
        )
    intervention_events_enqueue(
        events=[
            (
                item.delivery.intervention,
                "delivery.sent",
                {
                    "channel": item.delivery.channel,
                    "reason": "",
                    "extra": {"delivery_id": str(item.delivery.pk), "provider": item.provider},
                },
            )
            for item in sent
        ]
    )


@transaction.atomic(savepoint=False)
def delivery_mark_failed(
    *, delivery: Delivery, provider: str, error_kind: str, error: str, response: dict[str, Any]
) -> None:
    """A send refused for good, or out of attempts → ``failed``, with its ``delivery.failed`` event."""
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(),
        status=Delivery.Status.FAILED,
        provider=provider,
        provider_response=response,
        last_error=error[:2000],
        error_kind=error_kind,
        failed_at=timezone.now(),
    )
    _delivery_event(delivery, "delivery.failed", reason=error_kind, provider=provider)


@transaction.atomic(savepoint=False)
def delivery_mark_unknown(*, delivery: Delivery, provider: str, error: str) -> None:
    """The provider did not answer (read timeout): it may have the message → ``unknown``, to be settled by
    asking it. No event: nothing is known yet."""
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(),
        status=Delivery.Status.UNKNOWN,
        provider=provider,
        last_error=error[:2000],
        error_kind="unknown",
    )


@transaction.atomic(savepoint=False)
def delivery_cancel(*, delivery: Delivery, reason: str) -> None:
    """Not to be sent after all (intervention cancelled or expired, consent withdrawn) → ``cancelled``."""
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(), status=Delivery.Status.CANCELLED, last_error=reason, resolved_at=timezone.now()
    )
    _delivery_event(delivery, "delivery.cancelled", reason=reason)


def delivery_requeue(
    *, delivery: Delivery, due_at: datetime, error: str, error_kind: str = "", spend_attempt: bool
) -> bool:
    """A claimed delivery handed back: ``sending`` → ``queued``, due at ``due_at``. ``spend_attempt`` False
    (quiet hours, a rate limit) gives back the attempt its claim took. Returns whether the row moved."""
    return bool(
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
            updated_at=Now(),
            status=Delivery.Status.QUEUED,
            next_attempt_at=due_at,
            last_error=error[:2000],
            error_kind=error_kind,
            attempts=F("attempts") if spend_attempt else F("attempts") - 1,
        )
    )


@transaction.atomic(savepoint=False)
def delivery_mark_unfound(*, delivery: Delivery, never_left: bool) -> str:
    """Settle a ``sending`` or ``unknown`` delivery that no provider of its channel found.

    ``never_left`` (every provider can look messages up and none has it): ``queued`` again, due now — the
    caller publishes it after commit. Otherwise ``unknown``, for an operator. Returns the status the row is
    left in; a row a late provider answer settled meanwhile is left as it is.
    """
    current = Delivery.objects.select_for_update().only("status", "last_error").get(pk=delivery.pk)
    if current.status not in (Delivery.Status.SENDING, Delivery.Status.UNKNOWN):
        return str(current.status)
    if never_left:
        Delivery.objects.filter(pk=delivery.pk).update(
            updated_at=Now(),
            status=Delivery.Status.QUEUED,
            next_attempt_at=None,
            last_error="not found at the provider after an interrupted send",
        )
        return Delivery.Status.QUEUED
    if current.status == Delivery.Status.UNKNOWN:
        return Delivery.Status.UNKNOWN
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(),
        status=Delivery.Status.UNKNOWN,
        error_kind="unknown",
        last_error=current.last_error or "worker stopped during the provider call; outcome unknown",
    )
    return Delivery.Status.UNKNOWN


def deliveries_touch(*, delivery_ids: Sequence[UUID], at: datetime) -> None:
    """Queued rows just published again by the sweep: ``updated_at`` moved so the next sweep leaves them
    to the worker (a delayed retry keeps its ``next_attempt_at`` and is not touched)."""
    Delivery.objects.filter(
        id__in=list(delivery_ids), status=Delivery.Status.QUEUED, next_attempt_at__isnull=True
    ).update(updated_at=at)


@transaction.atomic
def delivery_retry_schedule(*, delivery: Delivery) -> Delivery:
    """An operator's retry of a failed or unknown delivery: ``queued`` again with a fresh attempt budget.

    For ``unknown`` this is the operator's decision that the provider did not send it. The caller
    publishes it after commit.
    """
    updated = Delivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.Status.FAILED, Delivery.Status.UNKNOWN]
    ).update(
        updated_at=Now(),
        status=Delivery.Status.QUEUED,
        attempts=0,
        next_attempt_at=None,
        error_kind="",
        resolved_at=None,
        failed_at=None,
    )
    if not updated:
        raise ConflictError(
            f"Delivery {delivery.pk} is {delivery.status}; only failed or unknown can be retried."
        )
    delivery.refresh_from_db()
    return delivery


@transaction.atomic
def delivery_resolve(*, delivery: Delivery, note: str = "") -> Delivery:
    """An operator closes a failed or unknown delivery: it stays as it is and leaves the work lists."""
    updated = Delivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.Status.FAILED, Delivery.Status.UNKNOWN]
    ).update(updated_at=Now(), resolved_at=timezone.now(), last_error=note if note else F("last_error"))
    if not updated:
        raise ConflictError(
            f"Delivery {delivery.pk} is {delivery.status}; only failed or unknown can be resolved."
        )
    delivery.refresh_from_db()
    return delivery


@transaction.atomic(savepoint=False)
def delivery_mark_undelivered(
    *, delivery: Delivery, reason: str, permanent: bool, response: dict[str, Any]
) -> bool:
    """A provider reports a message it had accepted as undeliverable (bounce, Twilio "undelivered") →
    ``failed``, with its event. False when the delivery was not in a state a report can change (already
    failed, cancelled)."""
    updated = Delivery.objects.filter(
        pk=delivery.pk,
        status__in=[Delivery.Status.SENT, Delivery.Status.DELIVERED, Delivery.Status.UNKNOWN],
    ).update(
        updated_at=Now(),
        status=Delivery.Status.FAILED,
        error_kind="permanent" if permanent else "transient",
        last_error=reason[:2000],
        provider_response={**delivery.provider_response, "report": response},
        failed_at=timezone.now(),
    )
    if not updated:
        return False
    _delivery_event(delivery, "delivery.failed", reason=reason[:200], provider=delivery.provider)
    return True


def _delivery_event(delivery: Delivery, type: str, *, reason: str = "", provider: str = "") -> None:
    extra: dict[str, Any] = {"delivery_id": str(delivery.pk)}
    if provider:
        extra["provider"] = provider
    intervention_events_enqueue(
        events=[
            (delivery.intervention, type, {"channel": delivery.channel, "reason": reason, "extra": extra})
        ]
    )


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
    propensity: dict[str, Any] = field(default_factory=dict)
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
                "propensity": i.propensity,
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


# --- Data rights: a shopper's erasure --------------------------------------------------------------
#
# Called by ``interventions.data_rights`` inside personalization's erase transaction. Interventions and
# deliveries stay, for campaign results (exposures, holdouts, conversions per variant), re-keyed by the
# shopper's tombstone id; what could identify the shopper goes. Running it twice changes nothing more.


def interventions_erase_shopper(*, profile_id: int, user_id: str, erased_id: str) -> int:
    """Re-key the shopper's interventions (``user_id`` → ``erased_id``) and drop their rendered content,
    trigger context, session and cart ids and on-site sequence numbers; drop their deliveries' provider
    errors, answers and message ids (which echo addresses and numbers, and name the message at the
    provider). Their ``intervention-events`` outbox rows are re-keyed the same way and lose ``reason``
    (a failure's reason is the provider's text). Returns how many interventions."""
    interventions = Intervention.objects.filter(Q(profile_id=profile_id) | Q(user_id=user_id))
    Delivery.objects.filter(intervention__in=interventions).update(
        provider_response={}, last_error="", provider_message_id="", updated_at=Now()
    )
    count = interventions.update(
        user_id=erased_id, content={}, context={}, session_id="", cart_id="", seq=None, updated_at=Now()
    )
    outbox_messages_rekey(
        topic=TOPIC, key=user_id, new_key=erased_id, fields={"user_id": erased_id}, drop=("reason",)
    )
    return count
