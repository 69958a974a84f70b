"""Reads over tracking events, for the apps above."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from tracking.models import Conversion, TrackingEvent


def tracking_events_in_order() -> QuerySet[TrackingEvent]:
    """Tracking events oldest first (ties by id), e.g. to prefetch an intervention's history."""
    return TrackingEvent.objects.order_by("occurred_at", "id")


# --- Raw exports: every row of a period, for analysts (tracking/exports.py) ----------------------------

TRACKING_EVENT_EXPORT_FIELDS = (
    "event_id",
    "occurred_at",
    "received_at",
    "type",
    "source",
    "channel",
    "user_id",
    "intervention_id",
    "intervention__campaign_id",
    "intervention__variant_id",
    "delivery_id",
)
CONVERSION_EXPORT_FIELDS = (
    "id",
    "occurred_at",
    "order_id",
    "user_id",
    "revenue",
    "currency",
    "attribution_model",
    "campaign_id",
    "variant_id",
    "intervention_id",
    "channel",
    "is_holdout",
)


def tracking_events_for_export(
    *, start: datetime | None, end: datetime | None, campaign_id: int | None
) -> QuerySet[TrackingEvent, tuple[Any, ...]]:
    """Events that occurred in ``[start, end)`` (on one campaign's interventions), oldest first."""
    rows = TrackingEvent.objects.all()
    if start is not None:
        rows = rows.filter(occurred_at__gte=start)
    if end is not None:
        rows = rows.filter(occurred_at__lt=end)
    if campaign_id is not None:
        rows = rows.filter(intervention__campaign_id=campaign_id)
    return rows.order_by("occurred_at", "id").values_list(*TRACKING_EVENT_EXPORT_FIELDS)


def conversions_for_export(
    *, start: datetime | None, end: datetime | None, campaign_id: int | None
) -> QuerySet[Conversion, tuple[Any, ...]]:
    """Conversions (orders, attributed or not) that occurred in ``[start, end)`` (credited to one
    campaign), oldest first."""
    rows = Conversion.objects.all()
    if start is not None:
        rows = rows.filter(occurred_at__gte=start)
    if end is not None:
        rows = rows.filter(occurred_at__lt=end)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    return rows.order_by("occurred_at", "id").values_list(*CONVERSION_EXPORT_FIELDS)
