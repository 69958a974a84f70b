"""Attribution of orders to the interventions that earned them (last touch), published as conversion-events.

A *touch* is an intervention decided for the shopper before the order, within its campaign's attribution
window, of a campaign whose conversion goal is ``checkout_completed``: one that went out (pending or
delivered) or one withheld because the shopper is in the campaign's holdout. Holdout touches are kept
on purpose: an order whose last touch is a holdout is a conversion *without* the message, and comparing
the two is what measures incremental revenue. An order with no touch is recorded and published too (no
intervention id), so organic conversions are counted on the same footing.

One conversion per order and model (a unique constraint); a replayed checkout changes nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Max, Q

from campaigns.models import Campaign, Intervention
from messaging.services import outbox_enqueue_bulk
from tracking.models import Conversion

TOPIC = "conversion-events"
GOAL = "checkout_completed"


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    user_id: str
    revenue: Decimal
    currency: str
    occurred_at: datetime
    trigger_event_id: str = ""


def conversion_payload(*, conversion: Conversion) -> dict[str, Any]:
    """The JSON body of one ``conversion-events`` message (SPEC §3.4)."""
    attributed = conversion.intervention_id is not None
    return {
        "event_id": str(uuid.uuid4()),
        "type": "conversion.attributed" if attributed else "conversion.unattributed",
        "order_id": conversion.order_id,
        "user_id": conversion.user_id,
        "revenue": float(conversion.revenue),
        "currency": conversion.currency,
        "occurred_at": conversion.occurred_at.isoformat(),
        "attribution_model": conversion.attribution_model,
        "intervention_id": str(conversion.intervention_id) if attributed else None,
        "campaign_id": str(conversion.campaign_id) if conversion.campaign_id is not None else None,
        "variant_id": str(conversion.variant_id) if conversion.variant_id is not None else None,
        "channel": conversion.channel or None,
        "is_holdout": conversion.is_holdout,
        "trigger_event_id": conversion.trigger_event_id or None,
    }


@transaction.atomic
def conversions_record(*, orders: Sequence[OrderPlaced]) -> list[Conversion]:
    """Attribute and record orders not recorded before; returns the new conversions.

    Writes one ``conversion-events`` outbox row per new conversion, in the caller's transaction.
    """
    unique: dict[str, OrderPlaced] = {}
    for order in orders:
        unique.setdefault(order.order_id, order)
    if not unique:
        return []
    known = set(
        Conversion.objects.filter(
            order_id__in=unique.keys(), attribution_model=Conversion.Model.LAST_TOUCH
        ).values_list("order_id", flat=True)
    )
    todo = [order for order in unique.values() if order.order_id not in known]
    if not todo:
        return []

    touches = _touches(orders=todo)
    conversions: list[Conversion] = []
    for order in todo:
        touch = _last_touch(order=order, touches=touches.get(order.user_id, []))
        conversions.append(
            Conversion(
                id=uuid.uuid4(),
                order_id=order.order_id,
                user_id=order.user_id,
                revenue=order.revenue,
                currency=order.currency or "EUR",
                occurred_at=order.occurred_at,
                attribution_model=Conversion.Model.LAST_TOUCH,
                intervention_id=touch["id"] if touch else None,
                campaign_id=touch["campaign_id"] if touch else None,
                variant_id=touch["variant_id"] if touch else None,
                channel=(touch["channel"] or "") if touch else "",
                is_holdout=bool(touch and touch["is_holdout"]),
                trigger_event_id=order.trigger_event_id,
            )
        )
    # A concurrent consumer (during a rebalance) may record the same order: keep only what we inserted.
    Conversion.objects.bulk_create(conversions, ignore_conflicts=True)
    inserted = set(Conversion.objects.filter(pk__in=[c.pk for c in conversions]).values_list("pk", flat=True))
    fresh = [c for c in conversions if c.pk in inserted]
    outbox_enqueue_bulk(messages=[(TOPIC, c.user_id, conversion_payload(conversion=c)) for c in fresh])
    return fresh


def _touches(*, orders: Sequence[OrderPlaced]) -> dict[str, list[dict[str, Any]]]:
    longest = Campaign.objects.filter(conversion_goal=GOAL).aggregate(m=Max("attribution_window_seconds"))[
        "m"
    ]
    if not longest:
        return {}
    earliest = min(order.occurred_at for order in orders) - timedelta(seconds=longest)
    latest = max(order.occurred_at for order in orders)
    rows = (
        Intervention.objects.filter(
            user_id__in={order.user_id for order in orders},
            campaign__conversion_goal=GOAL,
            created_at__gte=earliest,
            created_at__lte=latest,
        )
        .filter(
            # A control variant with nothing to send is still an exposure: its shoppers' orders must count
            # for the control, or lift over control would be measured against zero.
            Q(is_holdout=True)
            | Q(suppression_reason="control")
            | Q(status__in=[Intervention.Status.PENDING, Intervention.Status.DELIVERED])
        )
        .order_by("created_at")
        .values(
            "id",
            "user_id",
            "campaign_id",
            "variant_id",
            "channel",
            "is_holdout",
            "created_at",
            "campaign__attribution_window_seconds",
        )
    )
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(dict(row))
    return by_user


def _last_touch(*, order: OrderPlaced, touches: list[dict[str, Any]]) -> dict[str, Any] | None:
    for touch in reversed(touches):  # newest first
        created: datetime = touch["created_at"]
        if created > order.occurred_at:
            continue
        if order.occurred_at - created <= timedelta(seconds=touch["campaign__attribution_window_seconds"]):
            return dict(touch)
    return None
