"""Interventions triggered by a service call (``POST /interventions``) instead of a Kafka event.

Two kinds of call:

- **by campaign** (:func:`intervention_trigger`): the request becomes one :class:`InboundEvent` and runs
  through the SAME decision path as a consumed event (``delivery.services.decisions_process_batch``), with
  a campaign set holding only that campaign — conditions and segment on the given context, consent, caps,
  cooldown, daily budget, quiet hours, holdout, variant, channel, content, persistence and hand-off;
- **direct** (:func:`intervention_send_direct`): one template on one channel, with no campaign rules but
  consent, quiet hours and a reachable contact point. The decision is recorded under a built-in campaign
  (``campaigns.services.campaign_direct_get_or_create``), so reports and the unique (campaign, trigger
  event) still apply.

Either way the call is idempotent on its ``event_id``: a second call with the same id returns the decision
taken the first time and changes nothing.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns.models import Campaign, Template, Variant
from campaigns.selectors import campaign_get, template_get
from campaigns.services import DIRECT_TRIGGER, campaign_direct_get_or_create, template_render
from core.errors import ApplicationError, ConflictError, NotFoundError
from core.observability import get_logger
from delivery import metrics
from delivery.eligibility import in_quiet_hours
from delivery.events import InboundEvent
from delivery.handoff import Handoff
from delivery.selectors import CampaignSet
from delivery.services import decisions_process_batch
from interventions.models import Delivery, Intervention
from interventions.selectors import intervention_for_trigger
from interventions.services import LifecycleEvent, intervention_insert
from notifications.channels import channel_reachable
from personalization.models import Channel, Profile
from personalization.rendering import TemplateRenderError
from personalization.services import (
    ProfileChange,
    profile_changes_apply,
    profile_onsite_seq_allocate,
    profiles_lock,
)

logger = get_logger(__name__)


@dataclass(frozen=True)
class Triggered:
    intervention: Intervention
    created: bool  # False when this event id had been decided before (a retry)


def intervention_trigger(
    *,
    user_id: str,
    campaign_id: int,
    context: Mapping[str, Any],
    event_id: str,
    user: Mapping[str, Any] | None = None,
) -> Triggered:
    """Decide ``campaign_id`` for ``user_id`` on ``context`` through the decision path.

    Raises 404 for an unknown campaign, 409 ``campaign_not_active`` when it is not active or outside its
    dates, and 422 ``conditions_not_met`` when its conditions or segment do not hold on the context (no
    decision is recorded then: the campaign simply does not apply).
    """
    campaign = campaign_get(campaign_id=campaign_id)
    if campaign is None:
        raise NotFoundError("Campaign not found.", details={"campaign_id": campaign_id})
    existing = intervention_for_trigger(campaign_id=campaign.pk, trigger_event_id=event_id)
    if existing is not None:
        return _earlier(existing, user_id=user_id)
    if campaign.trigger == DIRECT_TRIGGER:
        raise ConflictError(
            "The built-in direct-send campaign has no content of its own: send template_id and channel.",
            code="campaign_not_triggerable",
            details={"campaign_id": campaign.pk},
        )
    if campaign.status != Campaign.Status.ACTIVE:
        raise ConflictError(
            f"Campaign {campaign.pk} is {campaign.status}, not active.",
            code="campaign_not_active",
            details={"campaign_id": campaign.pk, "status": campaign.status},
        )
    campaign_set = CampaignSet.build(version=f"api:{campaign.pk}", campaigns=[campaign])
    now = timezone.now()
    if not campaign_set.plans or not campaign_set.plans[0].live_at(now):
        # No plan: its rules no longer compile (logged by CampaignSet.build); or before/after its dates.
        raise ConflictError(
            f"Campaign {campaign.pk} cannot run now.",
            code="campaign_not_active",
            details={
                "campaign_id": campaign.pk,
                "starts_at": campaign.starts_at,
                "ends_at": campaign.ends_at,
            },
        )

    event = _inbound_event(
        user_id=user_id, trigger=campaign.trigger, context=context, event_id=event_id, user=user, now=now
    )
    outcome = decisions_process_batch(events=[event], campaigns=campaign_set)
    intervention = intervention_for_trigger(campaign_id=campaign.pk, trigger_event_id=event_id)
    if intervention is None:
        raise ApplicationError(
            "The campaign's conditions or segment do not hold for this shopper and context.",
            code="conditions_not_met",
            status_code=422,
            details={"campaign_id": campaign.pk, "conditions": campaign.conditions},
        )
    if outcome.duplicates:
        # A concurrent call with the same event id wrote the row first.
        return _earlier(intervention, user_id=user_id)
    return Triggered(intervention=intervention, created=True)


def _earlier(intervention: Intervention, *, user_id: str) -> Triggered:
    """The decision taken before for this event id — unless it was another shopper's: an event id names
    one event of one shopper, and answering with someone else's intervention would leak it."""
    if intervention.user_id != user_id:
        raise ConflictError(
            "This event_id was already used for another shopper.",
            code="event_id_reused",
            details={"event_id": intervention.trigger_event_id},
        )
    return Triggered(intervention=intervention, created=False)


def _inbound_event(
    *,
    user_id: str,
    trigger: str,
    context: Mapping[str, Any],
    event_id: str,
    user: Mapping[str, Any] | None,
    now: datetime,
) -> InboundEvent:
    """The request as the decision path sees a consumed event: the context is the event's body, so
    ``score >= 0.7`` or ``cart.total >= 50`` read it exactly as they read a Kafka message."""
    payload: dict[str, Any] = {**context, "event_type": trigger, "user_id": user_id}
    cart = context.get("cart")
    score = context.get("score")
    return InboundEvent(
        kind="api",
        event_id=event_id,
        trigger=trigger,
        user_id=user_id,
        occurred_at=now,
        payload=payload,
        session_id=str(context.get("session_id") or ""),
        cart_id=str(context.get("cart_id") or ""),
        cart=dict(cart) if isinstance(cart, Mapping) else None,
        user=dict(user) if user else None,
        # An order is recorded from the order stream only; an API call never books revenue.
        order=None,
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
    )


# --- Direct sends: one template, one channel ---------------------------------------------------------------


def intervention_send_direct(
    *,
    user_id: str,
    template_id: int,
    channel: str,
    context: Mapping[str, Any],
    event_id: str,
    user: Mapping[str, Any] | None = None,
) -> Triggered:
    """Send ``template_id`` on ``channel`` to ``user_id``; see the module docstring.

    Suppressed (and recorded) for ``consent`` (or an erased shopper), ``quiet_hours``, ``no_channel`` (no
    usable contact point) and ``render_error``. 404 for an unknown template, 400 ``channel_mismatch`` when
    the template is for another channel.
    """
    template = template_get(template_id=template_id)
    if template is None:
        raise NotFoundError("Template not found.", details={"template_id": template_id})
    if template.channel != channel:
        raise ApplicationError(
            f"Template {template.pk} is for {template.channel}, not {channel}.",
            code="channel_mismatch",
            details={"channel": [f"the template's channel is {template.channel}"]},
        )
    campaign, variant = campaign_direct_get_or_create()
    triggered = _send_direct(
        campaign=campaign,
        variant=variant,
        template=template,
        user_id=user_id,
        channel=channel,
        context=context,
        event_id=event_id,
        user=user,
    )
    if triggered.created:
        outcome = (
            "suppressed" if triggered.intervention.status == Intervention.Status.SUPPRESSED else "created"
        )
        metrics.DECISIONS.labels(outcome).inc()
        if outcome == "suppressed":
            metrics.SUPPRESSED.labels(triggered.intervention.suppression_reason).inc()
    return triggered


@transaction.atomic
def _send_direct(
    *,
    campaign: Campaign,
    variant: Variant,
    template: Template,
    user_id: str,
    channel: str,
    context: Mapping[str, Any],
    event_id: str,
    user: Mapping[str, Any] | None,
) -> Triggered:
    now = timezone.now()
    # The profile row lock serialises two calls for one shopper, so the decided-before check is exact
    # for them; the unique (campaign, trigger event) settles any other race below.
    profiles = profiles_lock(user_ids=[user_id])
    existing = intervention_for_trigger(campaign_id=campaign.pk, trigger_event_id=event_id)
    if existing is not None:
        return _earlier(existing, user_id=user_id)
    cart = context.get("cart")
    profile_changes_apply(
        profiles=profiles,
        changes=[
            ProfileChange(
                user_id=user_id,
                seen_at=now,
                user=user,
                cart=cart if isinstance(cart, Mapping) else None,
            )
        ],
    )
    profile = profiles[user_id]

    intervention = Intervention(
        id=uuid.uuid4(),
        campaign=campaign,
        variant=variant,
        profile=profile,
        user_id=user_id,
        session_id=str(context.get("session_id") or "")[:128],
        cart_id=str(context.get("cart_id") or "")[:128],
        trigger_event_id=event_id,
        trigger=DIRECT_TRIGGER,
        channel=channel,
        context={"trigger_at": now.isoformat(), "event_type": DIRECT_TRIGGER, "template_id": template.pk},
        created_at=now,
        updated_at=now,
    )
    reason = _direct_refusal(profile=profile, channel=channel, now=now)
    if reason is None:
        try:
            intervention.content = template_render(
                template=template,
                locale=profile.locale or "",
                context=_render_context(profile=profile, context=context, campaign=campaign, variant=variant),
            )
        except TemplateRenderError as exc:
            logger.warning("direct_send_render_failed", template_id=template.pk, error=str(exc))
            reason = "render_error"

    delivery: Delivery | None = None
    if reason is not None:
        intervention.status = Intervention.Status.SUPPRESSED
        intervention.suppression_reason = reason
    else:
        intervention.status = Intervention.Status.PENDING
        intervention.expires_at = now + timedelta(seconds=campaign.expiry_seconds)
        if channel == Channel.ONSITE:
            intervention.seq = profile_onsite_seq_allocate(profiles=profiles, counts={user_id: 1})[user_id]
        delivery = Delivery(
            id=uuid.uuid4(), intervention=intervention, channel=channel, queued_at=now, updated_at=now
        )

    events: list[LifecycleEvent]
    if delivery is None:
        events = [(intervention, "intervention.suppressed", {"reason": reason})]
    else:
        events = [
            (intervention, "intervention.created", {}),
            (intervention, "delivery.queued", {"extra": {"delivery_id": str(delivery.pk)}}),
        ]
    if not intervention_insert(intervention=intervention, delivery=delivery, events=events):
        # Another process decided this event id between our check and our insert.
        winner = intervention_for_trigger(campaign_id=campaign.pk, trigger_event_id=event_id)
        assert winner is not None
        return _earlier(winner, user_id=user_id)
    if delivery is not None:
        # After commit: push on-site, queue the rest (the hand-off logs a failure, never raises it).
        onsite = [(user_id, intervention)] if channel == Channel.ONSITE else []
        queued = [] if channel == Channel.ONSITE else [delivery.pk]
        transaction.on_commit(functools.partial(Handoff().committed, onsite_rows=onsite, delivery_ids=queued))
    fresh = intervention_for_trigger(campaign_id=campaign.pk, trigger_event_id=event_id)
    assert fresh is not None
    return Triggered(intervention=fresh, created=True)


def _direct_refusal(*, profile: Profile, channel: str, now: datetime) -> str | None:
    if profile.erased_at is not None or not profile.has_consent(channel):
        return "consent"
    if in_quiet_hours(profile=profile, channel=channel, at=now):
        return "quiet_hours"
    if not channel_reachable(profile=profile, channel=channel):
        return "no_channel"
    return None


def _render_context(
    *, profile: Profile, context: Mapping[str, Any], campaign: Campaign, variant: Variant
) -> dict[str, Any]:
    """What a template sees: the same names as on the decision path, and the call's context as ``event``."""
    cart = context.get("cart")
    return {
        "profile": {
            "user_id": profile.user_id,
            "first_name": profile.first_name,
            "locale": profile.locale,
            "attributes": dict(profile.attributes or {}),
        },
        "cart": dict(cart) if isinstance(cart, Mapping) else dict(profile.last_cart or {}),
        "event": dict(context),
        "campaign": {"name": campaign.name},
        "variant": {"name": variant.name},
    }
