"""The decision path (SPEC §5): from a batch of validated events to committed interventions.

``decisions_process_batch`` runs one batch in ONE transaction:

1. lock (or create) the shoppers' profiles, in a stable order, and probe which (campaign, event) pairs
   were decided before — one round trip;
2. record orders: attribute each ``checkout_completed`` to its last touch (tracking.attribution) and
   publish ``conversion-events``; count the order on the profile only when it is new;
3. apply the events to the profiles (contact points, cart, last seen) — a replayed, older event does not
   overwrite newer data;
4. exit events cancel the shopper's pending or scheduled interventions of the campaigns that list them;
5. decide (``delivery.decisions``): match the active campaigns from the in-memory cache, evaluate
   conditions and segment, check eligibility (consent, frequency cap, cooldown, the shared daily budget),
   arbitrate by priority, apply the holdout, assign the variant (a bandit campaign's learned shares come
   from the in-process ``learned_cache``), choose the channel (the counters and the shoppers' presence
   read in one Redis call), render the content, log the decision's propensities;
6. write interventions, deliveries, ``intervention-events`` outbox rows (``interventions.services``) and
   the profiles with bulk statements, sent in one pipeline with the COMMIT.

After the commit, ``delivery.handoff`` pushes on-site interventions to the shopper's sockets, queues the
other deliveries on Celery and counts the sends in Redis. An event decided before (same campaign and
trigger event id) is skipped, so a redelivered message or a replayed batch changes nothing.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.observability import get_logger
from delivery import metrics
from delivery.allocation import learned_cache
from delivery.decisions import Decided, Decision, candidates_find, decide, exits_find
from delivery.events import SEND_RUN_EVENT_KIND, InboundEvent
from delivery.handoff import Handoff
from delivery.selectors import CampaignSet, campaign_cache
from interventions.models import Intervention
from interventions.selectors import interventions_decided_query
from interventions.services import (
    DecidedIntervention,
    interventions_batch_insert,
    interventions_cancel_on_exit,
    interventions_release_due,
)
from personalization.models import Channel, Profile
from personalization.selectors import profiles_erased
from personalization.services import (
    PROFILE_CHANGE_FIELDS,
    ProfileChange,
    profile_changes_apply,
    profile_onsite_seq_allocate,
    profiles_lock_reading,
    profiles_write,
)
from tracking.attribution import OrderPlaced, conversions_record

logger = get_logger(__name__)


@dataclass
class BatchOutcome:
    created: list[UUID] = field(default_factory=list)
    scheduled: list[UUID] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    cancelled: int = 0
    conversions: int = 0
    # (user_id, row) of the on-site interventions made pending here: pushed as they are, not read back.
    onsite_rows: list[tuple[str, DecidedIntervention | Intervention]] = field(default_factory=list)
    delivery_ids: list[UUID] = field(default_factory=list)
    committed_at: datetime | None = None
    # Send-run members whose render ran out of time, left undecided for the run to retry (event ids).
    render_retry: list[str] = field(default_factory=list)


def decisions_process_batch(
    *,
    events: Sequence[InboundEvent],
    campaigns: CampaignSet | None = None,
    handoff: Handoff | None = None,
    after_commit: bool = True,
) -> BatchOutcome:
    """Run the decision path for a batch in one transaction; see the module docstring.

    ``handoff``: the consumer's (threaded); by default the hand-off runs in the caller after commit.
    ``after_commit=False`` leaves delivery hand-off and cap counting to the caller (benchmarks).
    """
    campaign_set = campaigns or campaign_cache.current()
    handoff = handoff or Handoff()
    for attempt in (1, 2):
        outcome = BatchOutcome()
        try:
            with transaction.atomic():
                decided, tail = _process(
                    events=events, campaign_set=campaign_set, outcome=outcome, handoff=handoff
                )
                _write_and_commit(tail)
                if after_commit:
                    transaction.on_commit(
                        functools.partial(
                            handoff.committed,
                            sends=decided.ledger.pending,
                            onsite_rows=outcome.onsite_rows,
                            delivery_ids=outcome.delivery_ids,
                        )
                    )
            break
        except IntegrityError as exc:
            # Another consumer (a rebalance) decided one of these events after our probe and before our
            # insert, which waited for its commit: nothing of ours was written. Once more, the probe
            # finds its decision and the batch skips it as a duplicate.
            if attempt == 2 or _constraint(exc) != _ONCE_PER_EVENT:
                raise
            logger.info("decisions_decided_concurrently", events=len(events))
    outcome.committed_at = timezone.now()
    _observe(events=events, outcome=outcome)
    return outcome


_ONCE_PER_EVENT = "intervention_once_per_event"


def _constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def _observe(*, events: Sequence[InboundEvent], outcome: BatchOutcome) -> None:
    metrics.DECISIONS.labels("created").inc(len(outcome.created))
    metrics.DECISIONS.labels("scheduled").inc(len(outcome.scheduled))
    for reason, count in outcome.suppressed.items():
        metrics.DECISIONS.labels("suppressed").inc(count)
        metrics.SUPPRESSED.labels(reason).inc(count)
    metrics.DUPLICATES.inc(outcome.duplicates)
    metrics.CANCELLED.inc(outcome.cancelled)
    committed = outcome.committed_at or timezone.now()
    for event in events:
        metrics.DECISION_LATENCY.observe(max(0.0, (committed - event.occurred_at).total_seconds()))


def _process(
    *, events: Sequence[InboundEvent], campaign_set: CampaignSet, outcome: BatchOutcome, handoff: Handoff
) -> tuple[Decided, list[Callable[[], object]]]:
    now = timezone.now()
    # Which (event, campaign) pairs could produce an intervention at all (trigger and dates), and which
    # of those were decided before (a redelivery, a replayed batch): probed in the same round trip as the
    # profiles are locked.
    candidates = candidates_find(events=events, campaign_set=campaign_set, now=now)
    probe = interventions_decided_query(
        pairs={(p.id, event.event_id) for _, event, plans in candidates for p in plans}
    )
    profiles, probed = profiles_lock_reading(user_ids=[event.user_id for event in events], query=probe)
    erased = profiles_erased(profiles=profiles)
    if erased:  # an erased shopper's events decide and record nothing until a new consent
        events = [event for event in events if event.user_id not in erased]
        candidates = candidates_find(events=events, campaign_set=campaign_set, now=now)
    decided = {(int(campaign_id), str(event_id)) for campaign_id, event_id in probed}

    # Orders first: the touch that earned an order must still be pending when we look for it, and the
    # profile counts an order only the first time it is seen.
    orders = [_order(event) for event in events if event.order is not None]
    new_orders = {c.order_id for c in conversions_record(orders=[o for o in orders if o is not None])}
    outcome.conversions = len(new_orders)
    changes = []
    for event in events:
        order = event.order if event.trigger == "checkout_completed" else None
        revenue: Decimal | None = None
        if order is not None and str(order.get("order_id")) in new_orders:
            new_orders.discard(str(order["order_id"]))
            revenue = _revenue(order)
        changes.append(
            ProfileChange(
                user_id=event.user_id,
                # A send run's member event says nothing about the shopper being around.
                seen_at=None if event.kind == SEND_RUN_EVENT_KIND else event.occurred_at,
                user=event.user,
                cart=event.cart,
                order_revenue=revenue,
                order_at=event.occurred_at if revenue is not None else None,
            )
        )
    # Written once, at the end, with the on-site sequence numbers the decisions reserve: one UPDATE of
    # the batch's profiles instead of two (nothing in between reads them from the database).
    touched = profile_changes_apply(profiles=profiles, changes=changes, write=False)

    outcome.cancelled = interventions_cancel_on_exit(
        exits=exits_find(events=events, campaign_set=campaign_set)
    )
    result = decide(
        events=events,
        candidates=candidates,
        decided=decided,
        profiles=profiles,
        now=now,
        handoff=handoff,
        learned=learned_cache.current(),
    )
    outcome.duplicates = result.duplicates
    outcome.render_retry = result.render_retry
    tail: list[Callable[[], object]] = []
    if result.decisions:
        _persist(decisions=result.decisions, profiles=profiles, outcome=outcome, tail=tail)
    tail.append(lambda: profiles_write(profiles=touched, fields=[*PROFILE_CHANGE_FIELDS, "onsite_seq"]))
    return result, tail


def _write_and_commit(tail: Sequence[Callable[[], object]]) -> None:
    """The batch's writes (interventions, deliveries, outbox rows, profiles) need no answer: one psycopg
    pipeline, with the COMMIT when this batch's transaction is the outermost — one round trip instead of
    five. An error in any of them raises when the pipeline ends, inside the transaction, which is then
    rolled back (a failed COMMIT has already ended it). Django's own commit that follows finds the
    transaction closed and does nothing but run the on-commit hooks."""
    outermost = connection.commit_on_exit and len(connection.atomic_blocks) == 1
    assert connection.connection is not None
    with connection.wrap_database_errors, connection.connection.pipeline():
        for write in tail:
            write()
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")


def _order(event: InboundEvent) -> OrderPlaced | None:
    if event.trigger != "checkout_completed" or event.order is None:
        return None
    return OrderPlaced(
        order_id=str(event.order["order_id"]),
        user_id=event.user_id,
        revenue=_revenue(event.order),
        currency=str(event.order.get("currency") or (event.cart or {}).get("currency") or "EUR"),
        occurred_at=event.occurred_at,
        trigger_event_id=event.event_id,
    )


def _revenue(order: dict[str, Any]) -> Decimal:
    return Decimal(str(order.get("revenue") or 0)).quantize(Decimal("0.01"))


def _persist(
    *,
    decisions: list[Decision],
    profiles: dict[str, Profile],
    outcome: BatchOutcome,
    tail: list[Callable[[], object]],
) -> None:
    # On-site sequence numbers, per shopper, in decision order (the profile rows are locked).
    onsite = [d for d in decisions if d.delivery is not None and d.intervention.channel == Channel.ONSITE]
    counts: dict[str, int] = defaultdict(int)
    for d in onsite:
        counts[d.intervention.user_id] += 1
    if counts:
        first = profile_onsite_seq_allocate(profiles=profiles, counts=counts, write=False)
        for d in onsite:
            d.intervention.seq = first[d.intervention.user_id]
            first[d.intervention.user_id] += 1

    # Written at the end of the batch, with the profiles, in one pipeline. A concurrent consumer (a
    # rebalance) that decided one of these events first makes the insert fail on the (campaign, trigger
    # event) key, and the batch is decided again (decisions_process_batch).
    interventions = [d.intervention for d in decisions]
    deliveries = [(d.delivery, d.intervention) for d in decisions if d.delivery is not None]
    lifecycle = [(d.intervention, event_type, options) for d in decisions for event_type, options in d.events]
    tail.append(
        lambda: interventions_batch_insert(
            interventions=interventions, deliveries=deliveries, events=lifecycle
        )
    )
    for d in decisions:
        intervention = d.intervention
        if intervention.status == Intervention.Status.SUPPRESSED.value:
            outcome.suppressed[intervention.suppression_reason] += 1
        elif intervention.status == Intervention.Status.SCHEDULED.value:
            outcome.scheduled.append(intervention.pk)
        else:
            outcome.created.append(intervention.pk)
            if intervention.channel == Channel.ONSITE:
                outcome.onsite_rows.append((intervention.user_id, intervention))
            elif d.delivery is not None:
                outcome.delivery_ids.append(d.delivery)


# --- Scheduled interventions (a beat task) ----------------------------------------------------------------


def decisions_release_due(
    *, limit: int = 500, now: datetime | None = None, handoff: Handoff | None = None
) -> BatchOutcome:
    """Release the scheduled interventions whose time has come (``interventions_release_due``, its own
    transaction) and hand their deliveries off after its commit."""
    released = interventions_release_due(limit=limit, now=now)
    outcome = BatchOutcome(cancelled=released.cancelled)
    for delivery in released.deliveries:
        intervention = delivery.intervention
        outcome.created.append(intervention.pk)
        if delivery.channel == Channel.ONSITE:
            outcome.onsite_rows.append((intervention.user_id, intervention))
        else:
            outcome.delivery_ids.append(delivery.pk)
    if outcome.created:
        transaction.on_commit(
            functools.partial(
                (handoff or Handoff()).committed,
                onsite_rows=outcome.onsite_rows,
                delivery_ids=outcome.delivery_ids,
            )
        )
    return outcome
