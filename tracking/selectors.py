"""Reads over tracking events, for the apps above."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from interventions.models import Intervention
from interventions.selectors import INTERVENTION_TABLE
from tracking.models import Conversion, TrackingEvent


def tracking_events_in_order() -> QuerySet[TrackingEvent]:
    """Tracking events oldest first (ties by id), e.g. to prefetch an intervention's history."""
    return TrackingEvent.objects.order_by("occurred_at", "id")


def engagement_by_channel(*, since: datetime) -> dict[str, tuple[int, float]]:
    """Per channel, the interventions sent on it since ``since`` (holdouts and suppressions aside) and
    their engagement: a click counts 1, an open or a display without a click ½ — the weights of the
    shoppers' own counters (``Profile.engagement``), so the population's rate is a prior for them.

    One grouped query; the decision path never calls it (a beat task does, then shares it in Redis)."""
    intervention = INTERVENTION_TABLE
    event = TrackingEvent._meta.db_table
    sql = f"""
        SELECT i.channel, COUNT(*) AS tries,
               COALESCE(SUM(CASE WHEN g.clicked THEN 1.0 WHEN g.seen THEN 0.5 ELSE 0 END), 0) AS successes
        FROM {intervention} i
        LEFT JOIN (
            SELECT e.intervention_id, BOOL_OR(e.type = %s) AS clicked, BOOL_OR(e.type IN (%s, %s)) AS seen
            FROM {event} e
            WHERE e.occurred_at >= %s AND e.intervention_id IS NOT NULL
            GROUP BY e.intervention_id
        ) g ON g.intervention_id = i.id
        WHERE i.created_at >= %s AND i.channel <> '' AND NOT i.is_holdout AND i.status <> %s
        GROUP BY i.channel
    """  # noqa: S608  (table names come from the models, values are parameters)
    params: list[Any] = [
        TrackingEvent.Type.CLICKED.value,
        TrackingEvent.Type.OPENED.value,
        TrackingEvent.Type.DISPLAYED.value,
        since,
        since,
        Intervention.Status.SUPPRESSED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {
            str(channel): (int(tries), float(successes)) for channel, tries, successes in cursor.fetchall()
        }


def logged_decisions(*, campaign_id: int, reward: str) -> list[tuple[Any, ...]]:
    """The campaign's decisions that logged their propensities, for offline evaluation: ``(score,
    is_holdout, variant_id, channel, p_holdout, p_variant, p_channel, rewarded)`` per intervention with a
    variant or in the holdout, where ``rewarded`` is an attributed order (``reward="conversion"``) or a
    click (``"click"``)."""
    intervention = INTERVENTION_TABLE
    if reward == "click":
        table, condition = TrackingEvent._meta.db_table, "r.type = %s"
        params: list[Any] = [TrackingEvent.Type.CLICKED.value]
    else:
        table, condition, params = Conversion._meta.db_table, "TRUE", []
    sql = f"""
        SELECT (i.context->>'score')::float, i.is_holdout, i.variant_id, i.channel,
               (i.propensity->>'holdout')::float, COALESCE((i.propensity->>'variant')::float, 1),
               COALESCE((i.propensity->>'channel')::float, 1),
               EXISTS (SELECT 1 FROM {table} r WHERE r.intervention_id = i.id AND {condition})
        FROM {intervention} i
        WHERE i.campaign_id = %s AND (i.is_holdout OR i.variant_id IS NOT NULL) AND i.propensity ? 'holdout'
        ORDER BY i.created_at
    """  # noqa: S608  (table names come from the models, values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, campaign_id])
        return [tuple(row) for row in cursor.fetchall()]


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
