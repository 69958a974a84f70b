"""Recording what happened to interventions (tracking events) and attributing orders (attribution.py)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ApplicationError, NotFoundError
from core.observability import get_logger
from interventions.lifecycle import intervention_events_enqueue
from interventions.models import Intervention
from interventions.services import interventions_lock_for_engagement, interventions_mark_delivered
from messaging.services import outbox_messages_rekey
from personalization.selectors import ERASED_PREFIX, shopper_erased_id
from personalization.services import profile_engagement_record_many
from tracking.attribution import TOPIC as CONVERSION_TOPIC
from tracking.models import Conversion, TrackingEvent

logger = get_logger(__name__)

TYPES = frozenset(TrackingEvent.Type.values)
SOURCES = frozenset(TrackingEvent.Source.values)
# A display, open or click proves the message arrived even when no delivery receipt came first.
_IMPLIES_DELIVERY = frozenset({"delivered", "displayed", "opened", "clicked", "dismissed"})


def tracking_event_record(
    *,
    intervention_id: UUID,
    type: str,
    source: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    channel: str = "",
    properties: dict[str, Any] | None = None,
    delivery_id: UUID | None = None,
) -> TrackingEvent | None:
    """Record one tracking event; returns it, or ``None`` when ``event_id`` was already recorded.

    In the same transaction: the intervention (and its delivery on that channel) is marked delivered
    when the event proves delivery, the shopper's engagement counters for the channel move, and an
    ``engagement.<type>`` (or ``delivery.delivered``) message is written to the outbox.
    """
    event_id = event_id or str(uuid.uuid4())
    recorded = _record(
        events=[
            {
                "intervention_id": intervention_id,
                "type": type,
                "source": source,
                "occurred_at": occurred_at,
                "event_id": event_id,
                "channel": channel,
                "properties": properties,
                "delivery_id": delivery_id,
            }
        ],
        missing_is_error=True,
    )
    return recorded[0] if recorded else None


def tracking_events_record(*, events: Sequence[Mapping[str, Any]]) -> int:
    """Record a batch of tracking events (``POST /events``); returns how many were new.

    Each mapping has the keyword arguments of :func:`tracking_event_record`. Events naming an
    unknown intervention are skipped (and logged) rather than failing the whole batch.
    """
    return len(_record(events=events, missing_is_error=False))


@transaction.atomic
def _record(*, events: Sequence[Mapping[str, Any]], missing_is_error: bool) -> list[TrackingEvent]:
    for event in events:
        if event.get("type") not in TYPES:
            raise ApplicationError(f"Unknown tracking event type {event.get('type')!r}.", code="invalid_type")
        if event.get("source") not in SOURCES:
            raise ApplicationError(f"Unknown tracking source {event.get('source')!r}.", code="invalid_source")
    ids = {_as_uuid(event["intervention_id"]) for event in events}
    interventions = interventions_lock_for_engagement(intervention_ids=ids)
    missing = ids - interventions.keys()
    if missing and missing_is_error:
        raise NotFoundError("Intervention not found.", details={"intervention_id": str(next(iter(missing)))})
    if missing:
        logger.warning("tracking_unknown_interventions", count=len(missing))

    now = timezone.now()
    candidates: dict[str, TrackingEvent] = {}
    for event in events:
        intervention = interventions.get(_as_uuid(event["intervention_id"]))
        if intervention is None:
            continue
        event_id = str(event.get("event_id") or uuid.uuid4())
        if event_id in candidates:
            continue
        delivery_id = event.get("delivery_id")
        candidates[event_id] = TrackingEvent(
            event_id=event_id,
            type=event["type"],
            source=event["source"],
            intervention=intervention,
            delivery_id=_as_uuid(delivery_id) if delivery_id else None,
            user_id=intervention.user_id,
            channel=event.get("channel") or intervention.channel,
            occurred_at=event.get("occurred_at") or now,
            properties=dict(event.get("properties") or {}),
        )
    fresh = _insert_new(list(candidates.values()), now=now)
    if not fresh:
        return []

    delivered_now: dict[UUID, tuple[Intervention, datetime, str]] = {}
    engagement: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    lifecycle: list[tuple[Intervention, str, dict[str, Any]]] = []
    for row in fresh:
        intervention = row.intervention
        assert intervention is not None
        counters = engagement[row.user_id][row.channel or "unknown"]
        counters[row.type] = counters.get(row.type, 0) + 1
        lifecycle_type = "delivery.delivered" if row.type == "delivered" else f"engagement.{row.type}"
        extra: dict[str, Any] = {"tracking_event_id": row.event_id, "source": row.source}
        if row.delivery_id:
            extra["delivery_id"] = str(row.delivery_id)
        lifecycle.append(
            (
                intervention,
                lifecycle_type,
                {"channel": row.channel, "extra": extra, "occurred_at": row.occurred_at},
            )
        )
        if row.type in _IMPLIES_DELIVERY and intervention.delivered_at is None:
            delivered_now.setdefault(
                intervention.pk, (intervention, row.occurred_at, row.channel or intervention.channel)
            )

    interventions_mark_delivered(marks=list(delivered_now.values()))
    profile_engagement_record_many(increments=engagement)
    intervention_events_enqueue(events=lifecycle)
    return fresh


def _insert_new(events: list[TrackingEvent], *, now: datetime) -> list[TrackingEvent]:
    """INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING: the rows that were new, and only those.

    Django's ``bulk_create(ignore_conflicts=True)`` cannot tell which rows it skipped; the effect of
    a tracking event (counters, lifecycle messages) must happen once, so we ask PostgreSQL directly.
    """
    if not events:
        return []
    table = TrackingEvent._meta.db_table
    columns = (
        "event_id",
        "type",
        "source",
        "intervention_id",
        "delivery_id",
        "user_id",
        "channel",
        "occurred_at",
        "received_at",
        "properties",
    )
    placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(columns) - 1)) + ", %s::jsonb)"] * len(events))
    params: list[Any] = []
    for event in events:
        params.extend(
            [
                event.event_id,
                event.type,
                event.source,
                event.intervention_id,
                event.delivery_id,
                event.user_id,
                event.channel,
                event.occurred_at,
                now,
                _json(event.properties),
            ]
        )
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders} "  # noqa: S608  (fixed identifiers)
        "ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = {row[1]: row[0] for row in cursor.fetchall()}
    fresh = []
    for event in events:
        if event.event_id in inserted:
            event.pk = inserted[event.event_id]
            event.received_at = now
            fresh.append(event)
    return fresh


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _as_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise ApplicationError("intervention_id is not a UUID.", code="invalid_intervention_id") from exc


# --- Data rights: a shopper's erasure --------------------------------------------------------------
#
# Called by ``tracking.data_rights`` inside personalization's erase transaction. Tracking events and
# conversions stay, for campaign results (engagement, revenue per variant), re-keyed by the shopper's
# tombstone id; their free-form properties and the shop's order ids go. Running it twice changes nothing.


def tracking_erase_shopper(*, profile_id: int, user_id: str, erased_id: str) -> None:
    """Re-key the shopper's tracking events (dropping their ``properties``: free-form, from the shop or
    the provider) and conversions (the order id becomes a one-way id too, still unique per order), and
    their ``conversion-events`` outbox rows the same way."""
    TrackingEvent.objects.filter(
        Q(user_id=user_id) | Q(user_id=erased_id) | Q(intervention__profile_id=profile_id)
    ).update(user_id=erased_id, properties={})
    for conversion in Conversion.objects.filter(user_id__in=[user_id, erased_id]).exclude(
        order_id__startswith=ERASED_PREFIX
    ):
        order_id = shopper_erased_id(user_id=f"order:{conversion.order_id}")
        outbox_messages_rekey(
            topic=CONVERSION_TOPIC,
            key=user_id,
            new_key=erased_id,
            fields={"user_id": erased_id, "order_id": order_id},
            matching={"order_id": conversion.order_id},
        )
        conversion.order_id = order_id
        conversion.user_id = erased_id
        conversion.save(update_fields=["order_id", "user_id"])
    Conversion.objects.filter(user_id=user_id).update(user_id=erased_id)
