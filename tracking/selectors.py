"""Reads over tracking events, for the apps above."""

from __future__ import annotations

from django.db.models import QuerySet

from tracking.models import TrackingEvent


def tracking_events_in_order() -> QuerySet[TrackingEvent]:
    """Tracking events oldest first (ties by id), e.g. to prefetch an intervention's history."""
    return TrackingEvent.objects.order_by("occurred_at", "id")
