"""Campaigns and Kafka message bodies for the decision-path tests (plain functions, no fixtures)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from campaigns.models import Campaign, Template, TemplateLocalization, Variant
from campaigns.selectors import campaigns_active_triggered
from delivery.events import InboundEvent, parse_cart_event, parse_prediction
from delivery.selectors import CampaignSet
from personalization.models import Segment


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def template(
    *, channel: str, title: str, body: str = "Hi {{ profile.first_name|default('there') }}"
) -> Template:
    obj = Template.objects.create(
        name=unique(f"tpl-{channel}"), channel=channel, onsite_kind="modal" if channel == "onsite" else ""
    )
    TemplateLocalization.objects.create(
        template=obj,
        locale="en",
        subject=title,
        body_text=body,
        body_html="<p>" + body + "</p>" if channel == "email" else "",
        cta_label="Back to cart",
        cta_url="https://shop.example.com/cart",
        discount_code="SAVE10",
    )
    return obj


def campaign(
    *,
    trigger: str = "prediction.cart_abandonment",
    conditions: str = "score >= 0.7",
    segment: str | None = None,
    channels: list[str] | None = None,
    strategy: str = "first_available",
    priority: int = 0,
    variants: tuple[str, ...] = ("A",),
    **fields: Any,
) -> Campaign:
    channels = channels or ["onsite", "email"]
    seg = Segment.objects.create(name=unique("seg"), rules=segment) if segment else None
    obj = Campaign.objects.create(
        name=unique("campaign"),
        status=Campaign.Status.ACTIVE,
        kind=Campaign.Kind.TRIGGERED,
        trigger=trigger,
        conditions=conditions,
        segment=seg,
        channels=channels,
        channel_strategy=strategy,
        priority=priority,
        exit_events=fields.pop("exit_events", ["checkout_completed"]),
        **fields,
    )
    for name in variants:
        templates = {
            f"{channel}_template": template(
                channel=channel, title=f"{name}: {{{{ cart.total }}}} in your cart"
            )
            for channel in channels
        }
        Variant.objects.create(campaign=obj, name=name, weight=1, **templates)
    return obj


def active_set() -> CampaignSet:
    return CampaignSet.build(version=unique("v"), campaigns=campaigns_active_triggered())


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
