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

from django.db import connection, transaction
from django.utils import timezone

from campaigns.selectors import CAMPAIGN_TABLE
from core.bulk import rows_insert
from interventions.models import Intervention
from interventions.selectors import INTERVENTION_TABLE
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


@transaction.atomic(savepoint=False)  # inside the decision path's transaction: no SAVEPOINT round trips
def conversions_record(*, orders: Sequence[OrderPlaced]) -> list[Conversion]:
    """Attribute and record orders not recorded before; returns the new conversions.

    Writes one ``conversion-events`` outbox row per new conversion, in the caller's transaction. Two
    statements and the outbox insert for a whole batch of orders: the touches, then ``INSERT … ON
    CONFLICT DO NOTHING RETURNING`` — an order recorded before (a replay) or by a concurrent consumer
    (a rebalance) conflicts on the unique (order, model) and is not returned, so it is neither counted
    nor published twice.
    """
    unique: dict[str, OrderPlaced] = {}
    for order in orders:
        unique.setdefault(order.order_id, order)
    if not unique:
        return []
    todo = list(unique.values())
    touches = _touches(orders=todo)
    now = timezone.now()
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
                created_at=now,
            )
        )
    inserted = {str(pk) for pk in rows_insert(Conversion, conversions, ignore_conflicts=True)}
    fresh = [c for c in conversions if str(c.pk) in inserted]
    outbox_enqueue_bulk(messages=[(TOPIC, c.user_id, conversion_payload(conversion=c)) for c in fresh])
    return fresh


def _touches(*, orders: Sequence[OrderPlaced]) -> dict[str, list[dict[str, Any]]]:
    """The candidate touches of the orders' shoppers, oldest first, in one query.

    Driven by the shoppers: their interventions are read through the ``user_id`` index first
    (``MATERIALIZED``), then joined to the campaigns whose goal is an order and filtered by each
    campaign's window. Left to itself the planner started from the campaigns and scanned every
    intervention of every such campaign in the window (26 ms for 20 shoppers at 36,000 rows, growing
    with the table) — and it did so whenever the table's statistics were stale.
    """
    earliest = min(order.occurred_at for order in orders)
    latest = max(order.occurred_at for order in orders)
    intervention, campaign = INTERVENTION_TABLE, CAMPAIGN_TABLE
    sql = (
        "WITH mine AS MATERIALIZED ("  # noqa: S608  (identifiers from the models, values bound)
        "SELECT id, user_id, campaign_id, variant_id, channel, is_holdout, created_at, status, "
        f'suppression_reason FROM "{intervention}" WHERE user_id = ANY(%s)) '
        "SELECT m.id, m.user_id, m.campaign_id, m.variant_id, m.channel, m.is_holdout, m.created_at, "
        f'c.attribution_window_seconds FROM mine m JOIN "{campaign}" c ON c.id = m.campaign_id '
        "WHERE c.conversion_goal = %s AND m.created_at <= %s "
        "AND m.created_at >= %s - make_interval(secs => c.attribution_window_seconds) "
        # A control variant with nothing to send is still an exposure: its shoppers' orders must count
        # for the control, or lift over control would be measured against zero.
        "AND (m.is_holdout OR m.suppression_reason = 'control' OR m.status = ANY(%s)) "
        "ORDER BY m.created_at, m.id"
    )
    params: list[Any] = [
        sorted({order.user_id for order in orders}),
        GOAL,
        latest,
        earliest,
        [Intervention.Status.PENDING.value, Intervention.Status.DELIVERED.value],
    ]
    columns = ("id", "user_id", "campaign_id", "variant_id", "channel", "is_holdout", "created_at")
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            touch = dict(zip(columns, row[:7], strict=True))
            touch["campaign__attribution_window_seconds"] = row[7]
            by_user[touch["user_id"]].append(touch)
    return by_user


def _last_touch(*, order: OrderPlaced, touches: list[dict[str, Any]]) -> dict[str, Any] | None:
    for touch in reversed(touches):  # newest first
        created: datetime = touch["created_at"]
        if created > order.occurred_at:
            continue
        if order.occurred_at - created <= timedelta(seconds=touch["campaign__attribution_window_seconds"]):
            return dict(touch)
    return None
