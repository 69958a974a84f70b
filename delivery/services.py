"""The decision path (SPEC §5): from a batch of validated events to committed interventions.

``decisions_process_batch`` runs one batch in ONE transaction:

1. lock (or create) the shoppers' profiles, in a stable order, and probe which (campaign, event) pairs
   were decided before — one round trip;
2. record orders: attribute each ``checkout_completed`` to its last touch (tracking.attribution) and
   publish ``conversion-events``; count the order on the profile only when it is new;
3. apply the events to the profiles (contact points, cart, last seen) — a replayed, older event does not
   overwrite newer data;
4. exit events cancel the shopper's pending or scheduled interventions of the campaigns that list them;
5. match the active campaigns from the in-memory cache, evaluate conditions and segment, check eligibility
   (consent, frequency cap, cooldown, the shared daily budget), arbitrate by priority, apply the holdout,
   assign the variant, choose the channel (the counters and the shoppers' presence read in one Redis
   call), render the content;
6. write interventions, deliveries, ``intervention-events`` outbox rows and the profiles with bulk
   statements, sent in one pipeline with the COMMIT.

After the commit, on-site interventions are pushed to the shopper's sockets, the other deliveries are queued
on Celery, and the sends are counted in Redis. An event decided before (same campaign and trigger event id)
is skipped, so a redelivered message or a replayed batch changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, Variant
from campaigns.selectors import holdout_assign, variant_assign
from campaigns.services import template_render
from core.bulk import dicts_insert
from core.observability import get_logger
from delivery import metrics
from delivery.channel_selection import channel_choose
from delivery.eligibility import CapLedger, Send, consented_channels, in_quiet_hours, record_sends
from delivery.events import InboundEvent
from delivery.selectors import CampaignPlan, CampaignSet, campaign_cache, interventions_open_for_exit
from interventions.lifecycle import intervention_events_enqueue
from interventions.models import Delivery, Intervention
from notifications.channels import channel_reachable
from personalization.models import Channel, Profile
from personalization.rendering import TemplateRenderError
from personalization.rules import RuleError, profile_rule_context
from personalization.selectors import profiles_erased
from personalization.services import (
    PROFILE_CHANGE_FIELDS,
    ProfileChange,
    profile_changes_apply,
    profile_onsite_seq_allocate,
    profiles_lock,
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
    onsite_ids: list[UUID] = field(default_factory=list)
    # (user_id, row) of the on-site interventions decided here: pushed as they are, not read back.
    onsite_rows: list[tuple[str, Any]] = field(default_factory=list)
    delivery_ids: list[UUID] = field(default_factory=list)
    committed_at: datetime | None = None


@dataclass(slots=True)
class _Row:
    """An intervention decided in this batch, not yet written: plain attributes named like the model's
    columns. Building a Django model instance per decision (≈ 1.7 per event) cost more than the rest of
    the decision, and the rows are written as JSON anyway."""

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


@dataclass(slots=True)
class _Decision:
    intervention: _Row
    delivery: UUID | None  # the id of its delivery, on the intervention's channel
    events: list[tuple[str, dict[str, Any]]]
    counted: bool  # a send that counts against caps and the daily budget


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def decisions_process_batch(
    *,
    events: Sequence[InboundEvent],
    campaigns: CampaignSet | None = None,
    after_commit: bool = True,
) -> BatchOutcome:
    """Run the decision path for a batch in one transaction; see the module docstring.

    ``after_commit=False`` leaves delivery hand-off and cap counting to the caller (benchmarks).
    """
    campaign_set = campaigns or campaign_cache.current()
    for attempt in (1, 2):
        outcome = BatchOutcome()
        try:
            with transaction.atomic():
                ledger, tail = _process(events=events, campaign_set=campaign_set, outcome=outcome)
                _write_and_commit(tail)
                if after_commit:
                    transaction.on_commit(functools.partial(_hand_off, outcome=outcome, ledger=ledger))
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


# The consumer sets an executor so that pushing and queueing (a Redis round trip per message) run beside
# the next batch instead of in front of it; None (tests, beat tasks, the API) hands off in the caller.
handoff_executor: Executor | None = None
_handoff_thread = threading.local()


def handoff_thread_start() -> None:
    """Initializer of the hand-off executor's thread: one event loop for its lifetime, so the channel
    layer's Redis connections are opened once, not for every batch."""
    _handoff_thread.loop = asyncio.new_event_loop()


def handoff_thread_stop() -> None:
    """Run on the hand-off thread before its executor shuts down: closes the loop and its connections."""
    loop: asyncio.AbstractEventLoop | None = getattr(_handoff_thread, "loop", None)
    _handoff_thread.loop = None
    if loop is not None:
        loop.close()


def _hand_off(*, outcome: BatchOutcome, ledger: CapLedger | None) -> None:
    """After commit: count the sends in Redis, push on-site, queue the rest. Each step is safe to repeat
    and a failure of one is logged, not raised — the rows are committed and beat tasks retry them."""
    if ledger is not None and ledger.pending:
        if handoff_executor is not None:
            # The consumer: the next batch's caps read writes these sends first, in the same Redis call
            # (one round trip less per batch). Sends still waiting from before were not taken by this
            # batch (it read no caps): written now, so they never wait more than one batch (or the
            # consumer's idle poll, which writes them too).
            caps_record_pending()
            _unrecorded.extend(ledger.pending)
        else:
            _caps_record(ledger.pending)
    if not outcome.onsite_ids and not outcome.delivery_ids:
        return
    committed = time.monotonic()
    if handoff_executor is not None:
        handoff_executor.submit(_deliver, outcome=outcome, committed=committed)
    else:
        _deliver(outcome=outcome, committed=committed)


# Sends of committed batches not yet counted in Redis: the consumer's main thread only (see _hand_off).
_unrecorded: list[Send] = []


def caps_waiting() -> bool:
    """Are sends of committed batches waiting to be counted in Redis?"""
    return bool(_unrecorded)


def caps_record_pending() -> bool:
    """Write the sends that wait for the next batch's caps read; True if there were any."""
    if not _unrecorded:
        return False
    sends = _unrecorded[:]
    _unrecorded.clear()
    _caps_record(sends)
    return True


def _caps_record(sends: Sequence[Send]) -> None:
    from core.redis import redis_sync

    try:
        record_sends(redis=redis_sync(), sends=sends)
    except Exception:
        # The sends are committed; counting them is best effort (an under-count, never a double count).
        logger.exception("caps_record_failed", sends=len(sends))


def _deliver(*, outcome: BatchOutcome, committed: float) -> None:
    """Push the on-site frames and queue the other deliveries of a committed batch (``committed``: when,
    on the monotonic clock)."""
    from gateway.realtime import intervention_push, onsite_rows_push
    from notifications.services import deliveries_enqueue

    if handoff_executor is not None:
        # The side thread has its own connection, never recycled by a request cycle: check it here.
        close_old_connections()

    if outcome.onsite_ids:
        try:
            if outcome.onsite_rows:
                onsite_rows_push(rows=outcome.onsite_rows, loop=getattr(_handoff_thread, "loop", None))
            else:
                intervention_push(intervention_ids=outcome.onsite_ids)
            metrics.PUSH_SECONDS.observe(time.monotonic() - committed)
        except Exception:
            # The browser's resume replays from PostgreSQL; nothing is lost.
            logger.exception("onsite_push_failed", count=len(outcome.onsite_ids))
    if outcome.delivery_ids:
        try:
            deliveries_enqueue(delivery_ids=outcome.delivery_ids)
        except Exception:
            logger.exception("deliveries_enqueue_failed", count=len(outcome.delivery_ids))


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
    *, events: Sequence[InboundEvent], campaign_set: CampaignSet, outcome: BatchOutcome
) -> tuple[CapLedger, list[Callable[[], object]]]:
    now = timezone.now()
    # Which (event, campaign) pairs could produce an intervention at all (trigger and dates), and which
    # of those were decided before (a redelivery, a replayed batch): probed in the same round trip as the
    # profiles are locked.
    candidates: list[tuple[int, InboundEvent, list[CampaignPlan]]] = []
    for index, event in enumerate(events):
        plans = [p for p in campaign_set.by_trigger.get(event.trigger, ()) if p.live_at(now)]
        if plans:
            candidates.append((index, event, plans))
    probe = _decided_before_query(
        pairs={(p.id, event.event_id) for _, event, plans in candidates for p in plans}
    )
    profiles, probed = profiles_lock_reading(user_ids=[event.user_id for event in events], query=probe)
    erased = profiles_erased(profiles=profiles)
    if erased:  # an erased shopper's events decide and record nothing until a new consent
        events = [event for event in events if event.user_id not in erased]
        position = {id(event): index for index, event in enumerate(events)}
        candidates = [(position[id(e)], e, plans) for _, e, plans in candidates if id(e) in position]
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
                seen_at=event.occurred_at,
                user=event.user,
                cart=event.cart,
                order_revenue=revenue,
                order_at=event.occurred_at if revenue is not None else None,
            )
        )
    # Written once, at the end, with the on-site sequence numbers the decisions reserve: one UPDATE of
    # the batch's profiles instead of two (nothing in between reads them from the database).
    touched = profile_changes_apply(profiles=profiles, changes=changes, write=False)

    outcome.cancelled = _cancel_on_exit(events=events, campaign_set=campaign_set)
    tail: list[Callable[[], object]] = []
    ledger = _decide(
        events=events,
        candidates=candidates,
        decided=decided,
        profiles=profiles,
        outcome=outcome,
        now=now,
        tail=tail,
    )
    tail.append(lambda: profiles_write(profiles=touched, fields=[*PROFILE_CHANGE_FIELDS, "onsite_seq"]))
    return ledger, tail


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


def _cancel_on_exit(*, events: Sequence[InboundEvent], campaign_set: CampaignSet) -> int:
    """Cancel pending/scheduled interventions whose campaign lists the event as an exit event.

    Only interventions triggered before the exit event are cancelled, so a replayed old checkout never
    cancels the intervention of a newer cart.
    """
    exits: dict[tuple[str, int], datetime] = {}
    reasons: dict[tuple[str, int], str] = {}
    for event in events:
        for plan in campaign_set.by_exit_event.get(event.trigger, ()):
            key = (event.user_id, plan.id)
            if key not in exits or event.occurred_at > exits[key]:
                exits[key] = event.occurred_at
                reasons[key] = event.trigger
    if not exits:
        return 0
    cancelled: list[Intervention] = []
    for intervention in interventions_open_for_exit(pairs=set(exits)):
        key = (intervention.user_id, intervention.campaign_id)
        exit_at = exits.get(key)
        trigger_at = _trigger_at(intervention)
        if exit_at is None or (trigger_at is not None and trigger_at > exit_at):
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
                {"reason": f"exit_event:{reasons[(intervention.user_id, intervention.campaign_id)]}"},
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


def _decide(
    *,
    events: Sequence[InboundEvent],
    candidates: list[tuple[int, InboundEvent, list[CampaignPlan]]],
    decided: set[tuple[int, str]],
    profiles: dict[str, Profile],
    outcome: BatchOutcome,
    now: datetime,
    tail: list[Callable[[], object]],
) -> CapLedger:
    from core.redis import redis_sync
    from gateway.presence import live_socket_counts, online_from_counts

    ledger = CapLedger(now=now)
    if not candidates:
        return ledger

    # A later exit event of the same shopper in this batch means the moment has passed.
    last_exit: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        last_exit[(event.user_id, event.trigger)] = index

    pairs: list[tuple[Campaign, Profile]] = []
    matched: list[tuple[InboundEvent, Profile, dict[str, Any], list[CampaignPlan]]] = []
    seen: set[tuple[int, str]] = set()
    for index, event, plans in candidates:
        profile = profiles[event.user_id]
        context = profile_rule_context(profile, event=event.payload)
        hits: list[CampaignPlan] = []
        for plan in plans:
            key = (plan.id, event.event_id)
            if key in decided or key in seen:
                outcome.duplicates += 1
                continue
            if any(last_exit.get((event.user_id, name), -1) > index for name in plan.exit_events):
                continue
            if not _matches(plan=plan, context=context):
                continue
            seen.add(key)
            hits.append(plan)
            pairs.append((plan.campaign, profile))
        if hits:
            matched.append((event, profile, context, hits))
    if not matched:
        return ledger

    # Caps, cooldowns, budgets and who is on the site: one Redis round trip.
    wants_presence = list(
        dict.fromkeys(
            profile.user_id
            for _, profile, _, hits in matched
            if any(Channel.ONSITE in (plan.campaign.channels or []) for plan in hits)
        )
    )
    record = _unrecorded[:]
    _unrecorded.clear()
    try:
        counts = ledger.load(
            pairs=pairs, redis=redis_sync(), zcounts=live_socket_counts(wants_presence), record=record
        )
    except Exception:
        _unrecorded[:0] = record  # still to be written, before this batch's own sends
        raise
    online = online_from_counts(wants_presence, counts)

    decisions: list[_Decision] = []
    for event, profile, context, hits in matched:
        winner_found = False
        for plan in hits:
            if winner_found:
                decisions.append(_suppressed(plan=plan, event=event, profile=profile, reason="arbitration"))
                continue
            decision = _decide_one(
                plan=plan,
                event=event,
                profile=profile,
                context=context,
                ledger=ledger,
                online=profile.user_id in online,
                now=now,
            )
            decisions.append(decision)
            if decision.counted or decision.intervention.is_holdout:
                winner_found = True
    _persist(decisions=decisions, profiles=profiles, outcome=outcome, tail=tail)
    return ledger


def _decided_before_query(*, pairs: set[tuple[int, str]]) -> tuple[str, list[Any]] | None:
    """The query of the (campaign, trigger event) pairs already decided: (sql, params), or None.

    The exact pairs travel as two parallel arrays joined to the unique (campaign, trigger event) index:
    one index probe per pair whatever the table's statistics say. ``campaign_id = ANY(…) AND
    trigger_event_id = ANY(…)`` let the planner pick the campaign index and scan every intervention of
    the batch's campaigns (25 ms at 36,000 rows, growing); ``IN (SELECT jsonb_array_elements_text(…))``
    scanned the whole table."""
    if not pairs:
        return None
    table = Intervention._meta.db_table
    ordered = sorted(pairs)
    sql = (
        "SELECT i.campaign_id, i.trigger_event_id "  # noqa: S608  (fixed identifier)
        f'FROM unnest(%s::bigint[], %s::text[]) AS k(campaign_id, trigger_event_id) JOIN "{table}" i '
        "ON i.campaign_id = k.campaign_id AND i.trigger_event_id = k.trigger_event_id"
    )
    return sql, [[c for c, _ in ordered], [e for _, e in ordered]]


def _matches(*, plan: CampaignPlan, context: dict[str, Any]) -> bool:
    try:
        if not plan.condition.evaluate(context):
            return False
        return plan.segment is None or plan.segment.evaluate(context)
    except (RuleError, TypeError, ValueError, ArithmeticError) as exc:
        # A rule that cannot be evaluated on this event does not match it; the event still counts.
        logger.warning("campaign_rule_failed", campaign_id=plan.id, error=str(exc))
        return False


def _base(
    *, plan: CampaignPlan, event: InboundEvent, profile: Profile, variant: Variant | None = None
) -> _Row:
    context: dict[str, Any] = {"trigger_at": event.occurred_at.isoformat(), "event_type": event.trigger}
    if event.score is not None:
        context["score"] = event.score
    if event.cart:
        context["cart"] = {
            k: event.cart.get(k) for k in ("currency", "total", "item_count") if k in event.cart
        }
    return _Row(
        id=uuid.uuid4(),
        campaign_id=plan.id,
        variant_id=variant.pk if variant is not None else None,
        profile_id=profile.pk,
        user_id=event.user_id,
        session_id=event.session_id[:128],
        cart_id=event.cart_id[:128],
        trigger_event_id=event.event_id,
        trigger=event.trigger,
        context=context,
    )


def _suppressed(
    *,
    plan: CampaignPlan,
    event: InboundEvent,
    profile: Profile,
    reason: str,
    variant: Variant | None = None,
    is_holdout: bool = False,
) -> _Decision:
    intervention = _base(plan=plan, event=event, profile=profile, variant=variant)
    intervention.status = Intervention.Status.SUPPRESSED.value
    intervention.suppression_reason = reason
    intervention.is_holdout = is_holdout
    return _Decision(
        intervention=intervention,
        delivery=None,
        events=[("intervention.suppressed", {"reason": reason})],
        counted=False,
    )


def _decide_one(
    *,
    plan: CampaignPlan,
    event: InboundEvent,
    profile: Profile,
    context: dict[str, Any],
    ledger: CapLedger,
    online: bool,
    now: datetime,
) -> _Decision:
    campaign = plan.campaign
    channels = [c for c in (campaign.channels or []) if isinstance(c, str)]
    consented = consented_channels(profile=profile, channels=channels)
    if profile.erased_at is not None or not consented:
        return _suppressed(plan=plan, event=event, profile=profile, reason="consent")
    refusal = ledger.refusal(campaign=campaign, profile=profile)
    if refusal is not None:
        return _suppressed(plan=plan, event=event, profile=profile, reason=refusal)

    variant = variant_assign(campaign=campaign, variants=plan.variants, user_id=profile.user_id)
    if holdout_assign(campaign=campaign, user_id=profile.user_id):
        return _suppressed(
            plan=plan, event=event, profile=profile, reason="holdout", variant=variant, is_holdout=True
        )
    if variant is None:
        return _suppressed(plan=plan, event=event, profile=profile, reason="no_variant")

    send_at = now + timedelta(seconds=campaign.delay_seconds) if campaign.delay_seconds else now
    quiet: list[str] = []

    def usable(channel: str) -> bool:
        if channel not in consented or variant.template_for(channel) is None:
            return False
        if in_quiet_hours(profile=profile, channel=channel, at=send_at):
            quiet.append(channel)
            return False
        return channel_reachable(profile=profile, channel=channel)

    channel = channel_choose(
        strategy=campaign.channel_strategy,
        channels=channels,
        usable=usable,
        online=online,
        engagement=profile.engagement or {},
    )
    if channel is None:
        has_template = any(variant.template_for(c) is not None for c in channels)
        reason = (
            "control" if variant.is_control and not has_template else "quiet_hours" if quiet else "no_channel"
        )
        return _suppressed(plan=plan, event=event, profile=profile, reason=reason, variant=variant)

    template = variant.template_for(channel)
    assert template is not None
    try:
        content = template_render(
            template=template,
            locale=profile.locale or "",
            context=_render_context(
                context=context, event=event, profile=profile, plan=plan, variant=variant
            ),
        )
    except TemplateRenderError as exc:
        logger.warning("intervention_render_failed", campaign_id=campaign.pk, error=str(exc))
        return _suppressed(plan=plan, event=event, profile=profile, reason="render_error", variant=variant)

    intervention = _base(plan=plan, event=event, profile=profile, variant=variant)
    intervention.channel = channel
    intervention.content = content
    intervention.expires_at = send_at + timedelta(seconds=campaign.expiry_seconds)
    ledger.count(campaign=campaign, profile=profile, member=str(intervention.pk))
    if campaign.delay_seconds:
        intervention.status = Intervention.Status.SCHEDULED.value
        intervention.scheduled_for = send_at
        return _Decision(
            intervention=intervention,
            delivery=None,
            events=[
                ("intervention.created", {}),
                ("intervention.scheduled", {"extra": {"scheduled_for": send_at.isoformat()}}),
            ],
            counted=True,
        )
    intervention.status = Intervention.Status.PENDING.value
    delivery = uuid.uuid4()
    return _Decision(
        intervention=intervention,
        delivery=delivery,
        events=[
            ("intervention.created", {}),
            ("delivery.queued", {"extra": {"delivery_id": str(delivery)}}),
        ],
        counted=True,
    )


def _render_context(
    *,
    context: dict[str, Any],
    event: InboundEvent,
    profile: Profile,
    plan: CampaignPlan,
    variant: Variant,
) -> dict[str, Any]:
    event_view = {
        k: v
        for k, v in event.payload.items()
        if k in ("event_type", "model", "model_version", "score", "cart_id", "session_id")
    }
    return {
        "profile": {
            "user_id": profile.user_id,
            "first_name": profile.first_name,
            "locale": profile.locale,
            "attributes": dict(profile.attributes or {}),
        },
        "cart": context.get("cart") or {},
        "event": event_view,
        "campaign": {"name": plan.campaign.name},
        "variant": {"name": variant.name},
    }


def _persist(
    *,
    decisions: list[_Decision],
    profiles: dict[str, Profile],
    outcome: BatchOutcome,
    tail: list[Callable[[], object]],
) -> None:
    interventions = [d.intervention for d in decisions]
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

    # Written at the end of the batch, with the deliveries and outbox rows, in one pipeline. A concurrent
    # consumer (a rebalance) that decided one of these events first makes the insert fail on the
    # (campaign, trigger event) key, and the batch is decided again (decisions_process_batch).
    now = timezone.now().isoformat()
    rows = [
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
    ]
    deliveries = [
        {
            "id": str(d.delivery),
            "intervention_id": str(d.intervention.id),
            "channel": d.intervention.channel,
            "queued_at": now,
            "updated_at": now,
        }
        for d in decisions
        if d.delivery is not None
    ]
    lifecycle = [(d.intervention, event_type, options) for d in decisions for event_type, options in d.events]
    tail.append(lambda: dicts_insert(Intervention, rows))
    tail.append(lambda: dicts_insert(Delivery, deliveries))
    tail.append(lambda: intervention_events_enqueue(events=lifecycle))
    for d in decisions:
        intervention = d.intervention
        if intervention.status == Intervention.Status.SUPPRESSED.value:
            outcome.suppressed[intervention.suppression_reason] += 1
        elif intervention.status == Intervention.Status.SCHEDULED.value:
            outcome.scheduled.append(intervention.pk)
        else:
            outcome.created.append(intervention.pk)
            if intervention.channel == Channel.ONSITE:
                outcome.onsite_ids.append(intervention.pk)
                outcome.onsite_rows.append((intervention.user_id, intervention))
            elif d.delivery is not None:
                outcome.delivery_ids.append(d.delivery)


# --- Scheduled and stale interventions (beat tasks) ----------------------------------------------------


def interventions_release_due(*, limit: int = 500, now: datetime | None = None) -> BatchOutcome:
    """Release scheduled interventions whose time has come: queue their delivery, or cancel them when
    ``require_open_cart`` and the shopper has ordered since the trigger. Claimed with SKIP LOCKED, so
    several beat workers never release one twice."""
    now = now or timezone.now()
    outcome = BatchOutcome()
    with transaction.atomic():
        due = list(
            Intervention.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Intervention.Status.SCHEDULED, scheduled_for__lte=now)
            .select_related("campaign", "profile")
            .order_by("scheduled_for")[:limit]
        )
        if not due:
            return outcome
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
        outcome.cancelled = len(cancelled)
        for d in deliveries:
            outcome.created.append(d.intervention.pk)
            if d.channel == Channel.ONSITE:
                outcome.onsite_ids.append(d.intervention.pk)
            else:
                outcome.delivery_ids.append(d.pk)
        transaction.on_commit(lambda: _hand_off(outcome=outcome, ledger=None))
    return outcome


def interventions_expire(*, limit: int = 1000, now: datetime | None = None) -> int:
    """Mark pending interventions past their expiry as expired, with ``intervention.expired`` events.

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
