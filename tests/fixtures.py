"""The builders tests share: campaigns, shoppers, interventions and Kafka message bodies (plain functions).

They build through the owning apps' services, as the admin, the API and the decision path do: templates,
segments and campaigns through ``campaigns.services``, shoppers through ``personalization.services``,
interventions and deliveries through ``interventions.services``. A state no service produces (an exposure
backdated for a report, a push token a device registered) is written to the model here, and only here, with
a line saying why. pytest fixtures wrapping these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import Campaign, Template, Variant
from campaigns.selectors import campaigns_active_triggered
from delivery import runs
from delivery.events import InboundEvent, parse_cart_event, parse_prediction
from delivery.management.commands.consume_events import EventConsumer
from delivery.models import SendRun
from delivery.selectors import CampaignSet
from interventions.models import Delivery, Intervention
from interventions.services import (
    DecidedIntervention,
    interventions_batch_insert,
    interventions_lock_for_engagement,
    interventions_mark_delivered,
)
from notifications.services import delivery_send
from personalization.models import Profile, PushToken
from personalization.services import (
    ProfileChange,
    profile_preferences_update,
    profile_upsert_many,
    profiles_lock,
)
from tracking.attribution import OrderPlaced, conversions_record
from tracking.services import tracking_events_record

ACTOR = "test"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- Templates, segments, campaigns (campaigns.services) ---------------------------------------------------

CONTENT: dict[str, dict[str, str]] = {
    "onsite": {
        "subject": "Hi {{ first_name }}",
        "body_text": "Your cart: {{ cart.total|money(cart.currency) }}",
    },
    "email": {
        "subject": "Your cart",
        "body_text": "Hi {{ first_name }}",
        "body_html": "<p>Hi {{ first_name }}</p>",
    },
    "sms": {"body_text": "Cart {{ cart.total }} waiting"},
    "push": {"subject": "Your cart", "body_text": "{{ cart.item_count }} items waiting"},
}


def template(
    channel: str = "onsite",
    *,
    name: str | None = None,
    locales: Sequence[str] = ("en",),
    onsite_kind: str = "modal",
    **content: str,
) -> Template:
    """A template of ``channel`` with ``CONTENT[channel]`` in each locale, ``content`` replacing fields."""
    return campaign_services.template_create(
        data={
            "name": name or unique(f"{channel} template"),
            "channel": channel,
            "onsite_kind": onsite_kind if channel == "onsite" else "",
        },
        localizations=[{"locale": locale, **CONTENT[channel], **content} for locale in locales],
        actor_label=ACTOR,
    )


def offer(name: str, *, channels: Sequence[str]) -> dict[str, Any]:
    """A variant named ``name`` with a template per channel whose subject names it:
    ``"A: {{ cart.total }} in your cart"`` (none for an unknown channel, which the service refuses)."""
    subject = f"{name}: {{{{ cart.total }}}} in your cart"
    templates = {
        f"{c}_template": template(c, subject=subject) for c in dict.fromkeys(channels) if c in CONTENT
    }
    return {"name": name, "weight": 1, **templates}


def campaign(
    *,
    channels: Sequence[str] = ("onsite",),
    status: str = "draft",
    variants: Sequence[str | Mapping[str, Any]] | None = None,
    segment: str | None = None,
    **data: Any,
) -> Campaign:
    """A triggered campaign on cart-abandonment predictions scoring 0.7 or more, ``data`` naming other
    fields. ``variants``: a name is an ``offer`` on every channel, a mapping goes to the service as it is;
    by default an offer "A" and a "Control". ``segment``: the rules of a new segment to target."""
    if variants is None:
        variants = ["A", {"name": "Control", "weight": 1, "is_control": True}]
    if segment is not None:
        data["segment"] = campaign_services.segment_create(
            name=unique("Segment"), rules=segment, actor_label=ACTOR
        )
    return campaign_services.campaign_create(
        data={
            "name": unique("Campaign"),
            "trigger": "prediction.cart_abandonment",
            "conditions": "score >= 0.7",
            "channels": list(channels),
            "status": status,
            **data,
        },
        variants=[offer(v, channels=channels) if isinstance(v, str) else v for v in variants],
        actor_label=ACTOR,
    )


def campaign_live(*, variants: Sequence[str | Mapping[str, Any]] = ("A",), **data: Any) -> Campaign:
    """What the decision path runs: an active ``campaign`` with one offer "A" (no control), which a
    checkout exits."""
    data.setdefault("exit_events", ["checkout_completed"])
    return campaign(status="active", variants=variants, **data)


def build_cart_rescue(*, name: str = "Cart rescue") -> Campaign:
    """The README's demo: a cart-abandonment campaign, two variants on four channels, a control, a
    10% holdout, English and French content."""
    label = "test-setup"
    pop_up = campaign_services.template_create(
        data={"name": f"{name}: 10% pop-up", "channel": "onsite", "onsite_kind": "modal"},
        localizations=[
            {
                "locale": "en",
                "subject": "{{ profile.first_name }}, your cart is waiting",
                "body_text": "Finish your order of {{ cart.item_count }} items and save 10%.",
                "cta_label": "Use my 10% off",
                "cta_url": "{{ links.cart_url }}",
                "image_url": "",
                "discount_code": "SAVE10",
            },
            {
                "locale": "fr",
                "subject": "{{ profile.first_name }}, votre panier vous attend",
                "body_text": "Finalisez votre commande de {{ cart.item_count }} articles : -10 %.",
                "cta_label": "J'en profite",
                "cta_url": "{{ links.cart_url }}",
                "discount_code": "SAVE10",
            },
        ],
        actor_label=label,
    )
    banner = campaign_services.template_create(
        data={"name": f"{name}: free shipping banner", "channel": "onsite", "onsite_kind": "banner"},
        localizations=[
            {
                "locale": "en",
                "subject": "Free shipping on your cart today",
                "body_text": "Your {{ cart.items[0].name }} ships free until midnight.",
                "cta_label": "Check out now",
                "cta_url": "{{ links.cart_url }}",
            }
        ],
        actor_label=label,
    )
    email = campaign_services.template_create(
        data={"name": f"{name}: email", "channel": "email"},
        localizations=[
            {
                "locale": "en",
                "subject": "You left something behind, {{ profile.first_name }}",
                "body_text": "Your cart: {{ cart.item_count }} items.",
                "body_html": "<h1>Still thinking, {{ profile.first_name }}?</h1>"
                "<p>Code {{ discount_code }}</p>",
                "discount_code": "SAVE10",
            }
        ],
        actor_label=label,
    )
    sms = campaign_services.template_create(
        data={"name": f"{name}: SMS", "channel": "sms"},
        localizations=[
            {
                "locale": "en",
                "body_text": "Your cart misses you. Code {{ discount_code }}.",
                "discount_code": "SAVE10",
            }
        ],
        actor_label=label,
    )
    push = campaign_services.template_create(
        data={"name": f"{name}: push", "channel": "push"},
        localizations=[{"locale": "en", "subject": "Cart saved", "body_text": "10% off, today only."}],
        actor_label=label,
    )
    return campaign_services.campaign_create(
        data={
            "name": name,
            "kind": "triggered",
            "trigger": "prediction.cart_abandonment",
            "conditions": "score >= 0.7",
            "channels": ["onsite", "email", "sms", "push"],
            "holdout_percent": Decimal("10"),
            "exit_events": ["checkout_completed"],
        },
        variants=[
            {
                "name": "10% discount",
                "weight": 45,
                "onsite_template": pop_up,
                "email_template": email,
                "sms_template": sms,
                "push_template": push,
            },
            {
                "name": "Free shipping",
                "weight": 45,
                "onsite_template": banner,
                "email_template": email,
                "sms_template": sms,
                "push_template": push,
            },
            {"name": "Control", "weight": 10, "is_control": True},
        ],
        actor_label=label,
    )


def active_set() -> CampaignSet:
    return CampaignSet.build(version=unique("v"), campaigns=campaigns_active_triggered())


# --- Shoppers (personalization.services) -------------------------------------------------------------------

_CONTACT = ("email", "phone", "first_name", "locale")


def profiles(user_ids: Sequence[str]) -> dict[str, Profile]:
    """The shoppers of ``user_ids``, created when the engine has not seen them yet."""
    with transaction.atomic():
        return profiles_lock(user_ids=user_ids)


def shopper(
    user_id: str,
    *,
    push_tokens: Sequence[str] = (),
    quiet_hours_start: Any = None,
    quiet_hours_end: Any = None,
    **fields: Any,
) -> Profile:
    """A shopper with the contact points (email, phone, first_name, locale), consents
    (``consent_<channel>``) and ``timezone`` in ``fields``, quiet hours and push tokens."""
    zone = fields.pop("timezone", None)
    unknown = set(fields) - set(_CONTACT) - {f"consent_{c}" for c in ("onsite", "email", "sms", "push")}
    if unknown:
        raise TypeError(f"shopper() has no field(s) {', '.join(sorted(unknown))}")
    contact = {name: fields[name] for name in _CONTACT if name in fields}
    profile_upsert_many(changes=[ProfileChange(user_id=user_id, seen_at=timezone.now(), user=contact)])
    preferences: dict[str, Any] = {
        "consent": {
            name.removeprefix("consent_"): v for name, v in fields.items() if name.startswith("consent_")
        }
    }
    if zone is not None:
        preferences["timezone"] = zone
    if quiet_hours_start is not None or quiet_hours_end is not None:
        preferences["quiet_hours"] = {"start": quiet_hours_start, "end": quiet_hours_end}
    profile = profile_preferences_update(user_id=user_id, data=preferences)
    # Devices register their tokens with the push provider's SDK; no service of ours writes them.
    PushToken.objects.bulk_create([PushToken(profile=profile, token=token) for token in push_tokens])
    return profile


# --- Interventions and deliveries (interventions.services) ------------------------------------------------


def decided(
    *, campaign: Campaign, profile: Profile, variant: Variant | None = None, **fields: Any
) -> DecidedIntervention:
    """An intervention as the decision path decides it (``fields`` name DecidedIntervention's columns)."""
    return DecidedIntervention(
        id=uuid.uuid4(),
        campaign_id=campaign.pk,
        variant_id=variant.pk if variant is not None else None,
        profile_id=profile.pk,
        user_id=profile.user_id,
        session_id=fields.pop("session_id", ""),
        cart_id=fields.pop("cart_id", ""),
        trigger_event_id=fields.pop("trigger_event_id", unique("evt")),
        trigger=fields.pop("trigger", campaign.trigger),
        context=fields.pop("context", {}),
        **fields,
    )


def interventions_write(
    decisions: Sequence[DecidedIntervention], *, queued: bool = False
) -> list[Intervention]:
    """Insert ``decisions`` (each with a delivery queued on its channel if ``queued``), in their order."""
    with transaction.atomic():
        interventions_batch_insert(
            interventions=decisions,
            deliveries=[(uuid.uuid4(), d) for d in decisions] if queued else [],
            events=[],
        )
    by_id = Intervention.objects.in_bulk([d.id for d in decisions])
    return [by_id[d.id] for d in decisions]


DELIVERY_CONTENT = {
    "subject": "You left something behind",
    "body_text": "Your cart is waiting, {user_id}.",
    "body_html": '<p>Your cart is waiting, {user_id}. <a href="https://shop.example/cart">Cart</a></p>',
    "cta_label": "Back to my cart",
    "cta_url": "https://shop.example/cart?c=1",
}


def delivery_queued(
    channel: str,
    *,
    campaign: Campaign,
    content: dict[str, Any] | None = None,
    push_tokens: Sequence[str] = ("tok-a",),
    **profile_fields: Any,
) -> Delivery:
    """A delivery queued on ``channel`` for a new shopper (email, phone with SMS consent, in Paris unless
    ``profile_fields`` say otherwise; push tokens for a push), its intervention pending."""
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    fields: dict[str, Any] = {
        "email": f"{user_id}@example.com",
        "phone": "+33600" + str(uuid.uuid4().int)[:6],
        "consent_sms": True,
        "timezone": "Europe/Paris",
        **profile_fields,
    }
    profile = shopper(user_id, push_tokens=push_tokens if channel == "push" else (), **fields)
    content = content or {name: value.format(user_id=user_id) for name, value in DELIVERY_CONTENT.items()}
    (intervention,) = interventions_write(
        [
            decided(
                campaign=campaign,
                profile=profile,
                trigger_event_id=uuid.uuid4().hex,
                trigger="prediction.cart_abandonment",
                channel=channel,
                content=content,
            )
        ],
        queued=True,
    )
    return intervention.deliveries.get()


def onsite_intervention(
    *,
    user_id: str,
    seq: int,
    expires_in: timedelta | None = timedelta(minutes=30),
    status: str = Intervention.Status.PENDING,
    title: str = "Your cart misses you",
    **content: Any,
) -> Intervention:
    """An on-site intervention for a shopper, the way the decision path leaves it: pending, with a
    per-user seq, rendered content and a queued on-site Delivery (one campaign serves every call)."""
    live = Campaign.objects.filter(name="ws-test-campaign").first()
    if live is None:
        modal = template("onsite", name="ws-test-modal")
        live = campaign(
            name="ws-test-campaign",
            conditions="",
            channels=("onsite",),
            status="active",
            variants=[{"name": "A", "onsite_template": modal}],
        )
    (intervention,) = interventions_write(
        [
            decided(
                campaign=live,
                variant=live.variants.get(name="A"),
                profile=profiles([user_id])[user_id],
                trigger_event_id=f"evt-{uuid.uuid4()}",
                status=status,
                channel="onsite",
                seq=seq,
                expires_at=timezone.now() + expires_in if expires_in is not None else None,
                content={
                    "kind": "modal",
                    "title": title,
                    "body": "Come back for 10% off",
                    "cta_label": "Back to cart",
                    "cta_url": "/cart",
                    "discount_code": "SAVE10",
                    **content,
                },
            )
        ],
        queued=True,
    )
    return intervention


def send_until_settled(delivery: Delivery, *, limit: int = 20) -> list[str]:
    """Run the send service the way the queue would: again whenever a retry becomes due."""
    outcomes = []
    for _ in range(limit):
        delivery.refresh_from_db()
        if delivery.status != Delivery.Status.QUEUED:
            break
        if delivery.next_attempt_at and delivery.next_attempt_at > timezone.now():
            time.sleep((delivery.next_attempt_at - timezone.now()).total_seconds())
        outcomes.append(delivery_send(delivery_id=delivery.pk))
    delivery.refresh_from_db()
    return outcomes


# --- Reports: exposures, events, orders --------------------------------------------------------------------


def expose(
    *,
    campaign: Campaign,
    variant: Variant | None,
    users: list[str],
    holdout: bool = False,
    minutes_ago: float = 30,
    delivered: bool = True,
) -> list[Intervention]:
    """One intervention per shopper, as the decision path writes them (holdout ones suppressed), made
    ``minutes_ago`` and, unless held out or not ``delivered``, delivered by email then."""
    shoppers = profiles(users)
    at = timezone.now() - timedelta(minutes=minutes_ago)
    rows = interventions_write(
        [
            decided(
                campaign=campaign,
                variant=variant,
                profile=shoppers[u],
                channel="" if holdout else "email",
                status=Intervention.Status.SUPPRESSED if holdout else Intervention.Status.PENDING,
                suppression_reason="holdout" if holdout else "",
                is_holdout=holdout,
            )
            for u in users
        ]
    )
    if delivered and not holdout:
        with transaction.atomic():
            locked = interventions_lock_for_engagement(intervention_ids=[r.pk for r in rows])
            interventions_mark_delivered(marks=[(locked[r.pk], at, "email") for r in rows])
    # An older exposure: no service writes a past creation time (created_at is auto_now_add).
    Intervention.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=at)
    for row in rows:
        row.refresh_from_db()
    return rows


def order(user_id: str, revenue: str, currency: str = "EUR") -> OrderPlaced:
    return OrderPlaced(
        order_id=unique("o"),
        user_id=user_id,
        revenue=Decimal(revenue),
        currency=currency,
        occurred_at=timezone.now(),
    )


@dataclass
class Experiment:
    campaign: Campaign
    a: Variant
    control: Variant
    a_users: list[str]
    control_users: list[str]
    holdout_users: list[str]


def build_experiment() -> Experiment:
    """A (10 shoppers, one exposed twice), Control (10, a plain reminder), holdout (5) at 20 %.

    A: 3 seen (one opened), 2 clicked, 1 dismissed; orders 100 + 50 (same shopper), 30, 20 EUR and 12.50 USD.
    Control: two orders of 40 EUR. Holdout: one order of 20 EUR.
    """
    reminder = template("email", subject="Plain reminder")
    experiment = campaign_live(
        channels=["email"],
        variants=["A", {"name": "Control", "weight": 1, "is_control": True, "email_template": reminder}],
        holdout_percent=Decimal("20"),
    )
    a = experiment.variants.get(name="A")
    control = experiment.variants.get(name="Control")
    a_users = [unique("a") for _ in range(10)]
    control_users = [unique("c") for _ in range(10)]
    holdout_users = [unique("h") for _ in range(5)]
    a_rows = expose(campaign=experiment, variant=a, users=a_users)
    expose(campaign=experiment, variant=a, users=a_users[:1], minutes_ago=20, delivered=False)
    expose(campaign=experiment, variant=control, users=control_users)
    expose(campaign=experiment, variant=a, users=holdout_users, holdout=True)

    def event(row: Intervention, type: str, source: str = "webhook") -> dict[str, object]:
        return {"intervention_id": row.pk, "type": type, "source": source, "channel": "email"}

    tracking_events_record(
        events=[
            event(a_rows[0], "displayed"),
            event(a_rows[1], "displayed"),
            event(a_rows[1], "clicked"),
            event(a_rows[2], "opened"),
            event(a_rows[2], "clicked"),
            event(a_rows[2], "clicked"),
            event(a_rows[3], "dismissed"),
        ]
    )
    conversions_record(
        orders=[
            order(a_users[0], "100.00"),
            order(a_users[0], "50.00"),
            order(a_users[1], "30.00"),
            order(a_users[2], "20.00"),
            order(a_users[3], "12.50", "USD"),
            order(control_users[0], "40.00"),
            order(control_users[1], "40.00"),
            order(holdout_users[0], "20.00"),
        ]
    )
    return Experiment(experiment, a, control, a_users, control_users, holdout_users)


# --- Send runs of scheduled campaigns ----------------------------------------------------------------------


def scheduled_campaign(*, segment: str = 'attributes.tier == "gold"', **fields: Any) -> Campaign:
    """An active scheduled email campaign to ``segment``, due a second ago unless ``fields`` say otherwise
    (``send_at``, ``send_local_time``, ``cron``, ...)."""
    send_at = fields.pop("send_at", timezone.now() - timedelta(seconds=1))
    scheduled = campaign_live(
        kind=Campaign.Kind.SCHEDULED,
        trigger="",
        conditions="",
        segment=segment,
        channels=["email"],
        channel_strategy="fixed",
        send_at=timezone.now() + timedelta(days=1) if send_at is not None else None,
        **fields,
    )
    if send_at is not None:
        # A one-off time that has come: activation refuses a time already past.
        Campaign.objects.filter(pk=scheduled.pk).update(send_at=send_at)
        scheduled.refresh_from_db()
    return scheduled


def shoppers(count: int, *, tier: str = "gold", zone: str = "", prefix: str = "s") -> list[str]:
    """``count`` new shoppers with an email, of ``tier``, in time zone ``zone``; their user ids."""
    user_ids = [unique(prefix) for _ in range(count)]
    contact = {"timezone": zone, "attributes": {"tier": tier}}
    profile_upsert_many(
        changes=[
            ProfileChange(user_id=u, seen_at=timezone.now(), user={"email": f"{u}@example.com", **contact})
            for u in user_ids
        ]
    )
    return user_ids


def run_started(campaign: Campaign, *, now: datetime | None = None) -> SendRun:
    """A send run of ``campaign``, its audience snapshotted."""
    run = runs.send_run_create(campaign_id=campaign.pk, now=now)
    assert run is not None
    return runs.send_run_snapshot(run_id=run.pk, now=now)


def run_walked(run: SendRun, *, now: datetime | None = None, batch_size: int = 500) -> SendRun:
    """``run`` stepped batch after batch until nothing is left to do."""
    while runs.send_run_step(run_id=run.pk, now=now, batch_size=batch_size, after_commit=False).more:
        pass
    run.refresh_from_db()
    return run


# --- Kafka message bodies for the decision path -------------------------------------------------------------


def iso(moment: datetime | None = None) -> str:
    return (moment or timezone.now()).isoformat()


def prediction_body(
    *, user_id: str, score: float, prediction_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "prediction_id": prediction_id or unique("pred"),
        "model": "cart_abandonment",
        "model_version": "2026-11-01",
        "user_id": user_id,
        "session_id": "s-1",
        "cart_id": "c-1",
        "score": score,
        "predicted_at": iso(),
        "explanations": {"idle_seconds": 240},
        **extra,
    }


def cart_body(
    *, user_id: str, event_type: str = "cart_item_added", total: float = 129.9, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": unique("evt"),
        "event_type": event_type,
        "occurred_at": iso(),
        "user_id": user_id,
        "session_id": "s-1",
        "cart_id": "c-1",
        "cart": {
            "currency": "EUR",
            "total": total,
            "item_count": 1,
            "items": [{"sku": "SKU-1", "name": "Trail shoe", "price": total, "quantity": 1}],
        },
        "user": {"email": f"{user_id}@example.com", "first_name": "Ada", "locale": "en", "timezone": "UTC"},
    }
    if event_type == "checkout_completed":
        body["order"] = {"order_id": unique("order"), "revenue": total, "currency": "EUR"}
    body.update(extra)
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def prediction(**kwargs: Any) -> InboundEvent:
    return parse_prediction(encode(prediction_body(**kwargs)))


def cart_event(**kwargs: Any) -> InboundEvent:
    return parse_cart_event(encode(cart_body(**kwargs)))


def consume_count(consumer: EventConsumer, expected: int, timeout: float = 30.0) -> None:
    """Drive the consumer's own batch step until ``expected`` messages were fully handled."""
    assert consumer.consumer is not None
    handled = 0
    deadline = time.monotonic() + timeout
    while handled < expected:
        assert time.monotonic() < deadline, f"only {handled} of {expected} messages handled"
        batch = [
            m
            for m in consumer.consumer.consume(num_messages=consumer.batch_size, timeout=0.2)
            if not m.error()
        ]
        if batch:
            result = consumer.process(batch)
            if result is not None:  # None: the batch failed and was rewound, it comes again
                handled += result.valid + result.dead
