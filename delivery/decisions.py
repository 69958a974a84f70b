"""The rules of the decision path (SPEC §5): from a batch's events and profiles to decided interventions.

Pure decisions, no writes: which campaigns an event may trigger (trigger and dates) and which it exits;
for each candidate, conditions and segment, a later exit event of the same shopper in the batch,
eligibility (consent, frequency cap, cooldown, the shared daily budget), arbitration by priority, the
holdout, the variant (by weight, or by the bandit's learned shares), the channel (the counters and the
shoppers' presence read in one Redis call) and the rendered content. Each decision logs how likely its
variant, its channel and the holdout were (``propensity``), and why its channel was chosen; what was
learned comes from the process's ``learned_cache`` (delivery.allocation), never from a query per event.
``delivery.services`` runs them inside the batch's transaction and writes the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from campaigns.models import Campaign, Variant
from campaigns.selectors import holdout_assign, variant_allocate
from campaigns.services import template_render
from core.observability import get_logger
from core.redis import redis_sync
from delivery.allocation import Learned
from delivery.channel_selection import ChannelChoice, channel_choose
from delivery.eligibility import CapLedger, consented_channels, in_quiet_hours
from delivery.events import SEND_RUN_EVENT_KIND, InboundEvent
from delivery.handoff import Handoff
from delivery.selectors import CampaignPlan, CampaignSet
from gateway.presence import live_socket_counts, online_from_counts
from interventions.models import Intervention
from interventions.services import DecidedIntervention
from notifications.channels import channel_reachable, quiet_hours_end
from personalization.models import Channel, Profile
from personalization.rendering import TemplateRenderError
from personalization.rules import RuleError, profile_rule_context

logger = get_logger(__name__)

# (position in the batch, event, the campaigns it may trigger now)
Candidate = tuple[int, InboundEvent, list[CampaignPlan]]


@dataclass(slots=True)
class Decision:
    intervention: DecidedIntervention
    delivery: UUID | None  # the id of its delivery, on the intervention's channel
    events: list[tuple[str, dict[str, Any]]]  # its lifecycle events: (type, options)
    counted: bool  # a send that counts against caps and the daily budget


@dataclass
class Decided:
    decisions: list[Decision]
    ledger: CapLedger  # the sends counted, for the hand-off to record after commit
    duplicates: int  # (campaign, event) pairs decided before: skipped
    # Event ids of send-run members left undecided because their render ran out of time (the run retries
    # them; see delivery.runs).
    render_retry: list[str] = field(default_factory=list)


def candidates_find(
    *, events: Sequence[InboundEvent], campaign_set: CampaignSet, now: datetime
) -> list[Candidate]:
    """The events that could produce an intervention at all (trigger and dates), with those campaigns."""
    candidates: list[Candidate] = []
    for index, event in enumerate(events):
        plans = [p for p in campaign_set.by_trigger.get(event.trigger, ()) if p.live_at(now)]
        if plans:
            candidates.append((index, event, plans))
    return candidates


def exits_find(
    *, events: Sequence[InboundEvent], campaign_set: CampaignSet
) -> dict[tuple[str, int], tuple[datetime, str]]:
    """(user_id, campaign_id) of the campaigns that list one of the batch's events as an exit event: the
    latest such event's time and type."""
    exits: dict[tuple[str, int], tuple[datetime, str]] = {}
    for event in events:
        for plan in campaign_set.by_exit_event.get(event.trigger, ()):
            key = (event.user_id, plan.id)
            if key not in exits or event.occurred_at > exits[key][0]:
                exits[key] = (event.occurred_at, event.trigger)
    return exits


def decide(
    *,
    events: Sequence[InboundEvent],
    candidates: Sequence[Candidate],
    decided: set[tuple[int, str]],
    profiles: dict[str, Profile],
    now: datetime,
    handoff: Handoff,
    learned: Learned | None = None,
) -> Decided:
    """Decide every candidate not in ``decided`` (the (campaign, event) pairs decided before).

    The caps read also writes the sends ``handoff`` still holds from earlier batches (same Redis call)."""
    ledger = CapLedger(now=now)
    duplicates = 0
    if not candidates:
        return Decided(decisions=[], ledger=ledger, duplicates=duplicates)

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
                duplicates += 1
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
        return Decided(decisions=[], ledger=ledger, duplicates=duplicates)

    # Caps, cooldowns, budgets and who is on the site: one Redis round trip.
    wants_presence = list(
        dict.fromkeys(
            profile.user_id
            for _, profile, _, hits in matched
            if any(Channel.ONSITE in (plan.campaign.channels or []) for plan in hits)
        )
    )
    record = handoff.caps_take()
    try:
        counts = ledger.load(
            pairs=pairs, redis=redis_sync(), zcounts=live_socket_counts(wants_presence), record=record
        )
    except Exception:
        handoff.caps_untake(record)
        raise
    online = online_from_counts(wants_presence, counts)

    decisions: list[Decision] = []
    render_retry: list[str] = []
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
                learned=learned or Learned(),
            )
            if decision is None:  # a send-run member to render again later
                render_retry.append(event.event_id)
                continue
            decisions.append(decision)
            if decision.counted or decision.intervention.is_holdout:
                winner_found = True
    return Decided(decisions=decisions, ledger=ledger, duplicates=duplicates, render_retry=render_retry)


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
) -> DecidedIntervention:
    context: dict[str, Any] = {"trigger_at": event.occurred_at.isoformat(), "event_type": event.trigger}
    if event.score is not None:
        context["score"] = event.score
    if event.cart:
        context["cart"] = {
            k: event.cart.get(k) for k in ("currency", "total", "item_count") if k in event.cart
        }
    return DecidedIntervention(
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
    propensity: dict[str, Any] | None = None,
) -> Decision:
    intervention = _base(plan=plan, event=event, profile=profile, variant=variant)
    intervention.propensity = propensity or {}
    intervention.status = Intervention.Status.SUPPRESSED.value
    intervention.suppression_reason = reason
    intervention.is_holdout = is_holdout
    return Decision(
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
    learned: Learned,
) -> Decision | None:
    """The decision for one candidate; None only for a send-run member whose render ran out of time and
    may be tried again (``render_retry`` in its event's payload)."""
    campaign = plan.campaign
    channels = [c for c in (campaign.channels or []) if isinstance(c, str)]
    consented = consented_channels(profile=profile, channels=channels)
    if profile.erased_at is not None or not consented:
        return _suppressed(plan=plan, event=event, profile=profile, reason="consent")
    refusal = ledger.refusal(campaign=campaign, profile=profile)
    if refusal is not None:
        return _suppressed(plan=plan, event=event, profile=profile, reason=refusal)

    variant, variant_probability = variant_allocate(
        campaign=campaign,
        variants=plan.variants,
        user_id=profile.user_id,
        learned=learned.shares.get(campaign.pk) if campaign.use_bandit else None,
    )
    propensity: dict[str, Any] = {
        "variant": round(variant_probability, 6),
        "holdout": float(campaign.holdout_percent or 0) / 100,
    }
    if holdout_assign(campaign=campaign, user_id=profile.user_id):
        return _suppressed(
            plan=plan,
            event=event,
            profile=profile,
            reason="holdout",
            variant=variant,
            is_holdout=True,
            propensity=propensity,
        )
    if variant is None:
        return _suppressed(
            plan=plan, event=event, profile=profile, reason="no_variant", propensity=propensity
        )

    send_at = now + timedelta(seconds=campaign.delay_seconds) if campaign.delay_seconds else now
    quiet: list[str] = []

    def channel_at(at: datetime) -> ChannelChoice | None:
        def usable(channel: str) -> bool:
            if channel not in consented or variant.template_for(channel) is None:
                return False
            if in_quiet_hours(profile=profile, channel=channel, at=at):
                quiet.append(channel)
                return False
            return channel_reachable(profile=profile, channel=channel)

        return channel_choose(
            strategy=campaign.channel_strategy,
            channels=channels,
            usable=usable,
            online=online,
            engagement=profile.engagement or {},
            prior=learned.channel_rates,
        )

    choice = channel_at(send_at)
    deferred = False
    if choice is None and quiet and event.kind == SEND_RUN_EVENT_KIND:
        # A scheduled send owes the shopper the message: it waits for the end of their quiet hours (the
        # release task hands it over then) instead of being dropped.
        quiet_end = quiet_hours_end(profile=profile, at=send_at)
        if quiet_end is not None:
            choice = channel_at(quiet_end)
            if choice is not None:
                send_at, deferred = quiet_end.astimezone(send_at.tzinfo), True
    if choice is None:
        has_template = any(variant.template_for(c) is not None for c in channels)
        reason = (
            "control" if variant.is_control and not has_template else "quiet_hours" if quiet else "no_channel"
        )
        return _suppressed(
            plan=plan, event=event, profile=profile, reason=reason, variant=variant, propensity=propensity
        )
    channel = choice.channel
    propensity["channel"] = round(choice.probability, 6)
    propensity["channel_reason"] = choice.reason

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
        reason = "render_error"
        if exc.out_of_time and event.kind == SEND_RUN_EVENT_KIND:
            if event.payload.get("render_retry"):
                return None
            reason = "render_timeout"
        return _suppressed(plan=plan, event=event, profile=profile, reason=reason, variant=variant)

    intervention = _base(plan=plan, event=event, profile=profile, variant=variant)
    intervention.channel = channel
    intervention.content = content
    intervention.propensity = propensity
    intervention.expires_at = send_at + timedelta(seconds=campaign.expiry_seconds)
    ledger.count(campaign=campaign, profile=profile, member=str(intervention.pk))
    if campaign.delay_seconds or deferred:
        intervention.status = Intervention.Status.SCHEDULED.value
        intervention.scheduled_for = send_at
        scheduled: dict[str, Any] = {"scheduled_for": send_at.isoformat()}
        if deferred:
            scheduled["deferred"] = "quiet_hours"
        return Decision(
            intervention=intervention,
            delivery=None,
            events=[
                ("intervention.created", {"extra": {"propensity": propensity}}),
                ("intervention.scheduled", {"extra": scheduled}),
            ],
            counted=True,
        )
    intervention.status = Intervention.Status.PENDING.value
    delivery = uuid.uuid4()
    return Decision(
        intervention=intervention,
        delivery=delivery,
        events=[
            ("intervention.created", {"extra": {"propensity": propensity}}),
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
