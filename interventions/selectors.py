"""Reads over interventions and deliveries, for the apps above: querysets with their joins applied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import F, Q, QuerySet

from interventions.models import Delivery

# --- Deliveries: the send ledger ---------------------------------------------------------------------


def delivery_list() -> QuerySet[Delivery]:
    return Delivery.objects.select_related("intervention", "intervention__campaign")


def delivery_get(*, delivery_id: UUID | str) -> Delivery | None:
    try:
        return delivery_list().select_related("intervention__profile").get(pk=delivery_id)
    except (Delivery.DoesNotExist, ValueError, ValidationError):  # ValidationError: not a UUID
        return None


def delivery_by_provider_message_id(*, channel: str, provider_message_id: str) -> Delivery | None:
    if not provider_message_id:
        return None
    return (
        delivery_list()
        .select_related("intervention__profile")
        .filter(channel=channel, provider_message_id=provider_message_id)
        .exclude(provider_message_id="")  # the partial index's condition, stated for the planner
        .first()
    )


def deliveries_queued_channels(
    *, delivery_ids: Sequence[UUID | str], channels: Sequence[str]
) -> list[tuple[UUID, str]]:
    """(id, channel) of the given deliveries that are still ``queued`` on one of ``channels``."""
    # Plain SQL: on the decision path's hot path, building the ORM query cost about as much CPU as
    # running it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, channel FROM {Delivery._meta.db_table}"  # noqa: S608  (model's table name)
            " WHERE id = ANY(%s) AND status = %s AND channel = ANY(%s)",
            [[UUID(str(i)) for i in delivery_ids], Delivery.Status.QUEUED, list(channels)],
        )
        return list(cursor.fetchall())


def deliveries_for_send(*, delivery_ids: Sequence[UUID]) -> list[Delivery]:
    """Deliveries with their intervention and shopper, as a send needs them."""
    # The shopper's and the decision's large JSON columns play no part in a send: not loaded, not decoded.
    return list(
        Delivery.objects.select_related("intervention__profile")
        .defer(
            "provider_response",
            "intervention__context",
            "intervention__profile__attributes",
            "intervention__profile__last_cart",
            "intervention__profile__engagement",
        )
        .filter(id__in=delivery_ids)
    )


def deliveries_due_unclaimed(
    *, channels: Sequence[str], now: datetime, stale: datetime, long_delay: timedelta, limit: int
) -> list[tuple[UUID, str]]:
    """(id, channel), oldest first, of queued deliveries whose broker message is due but will not come by
    itself: a retry delayed longer than ``long_delay`` (it waits in the table), or a row whose message was
    not claimed by ``stale`` (lost with a killed worker's prefetched messages)."""
    return list(
        Delivery.objects.filter(status=Delivery.Status.QUEUED, channel__in=channels)
        .filter(
            Q(next_attempt_at__lte=now, next_attempt_at__gt=F("updated_at") + long_delay)
            | Q(next_attempt_at__isnull=True, updated_at__lte=stale)
            | Q(next_attempt_at__lte=stale)
        )
        .order_by("updated_at")
        .values_list("id", "channel")[:limit]
    )


def deliveries_unsettled(*, cutoff: datetime, lookup_channels: Sequence[str], limit: int) -> list[Delivery]:
    """Deliveries to settle by asking the provider: ``sending`` since before ``cutoff`` (their worker
    died), and ``unknown`` ones not touched since ``cutoff`` on a channel whose provider can look up."""
    return list(
        Delivery.objects.select_related("intervention__profile")
        .filter(
            Q(status=Delivery.Status.SENDING, sending_at__lte=cutoff)
            | Q(
                status=Delivery.Status.UNKNOWN,
                channel__in=lookup_channels,
                resolved_at__isnull=True,
                updated_at__lte=cutoff,
            )
        )
        .order_by("sending_at")[:limit]
    )


# --- Data rights: a shopper's erasure --------------------------------------------------------------


def delivery_ids_of_profile(*, profile_id: int) -> list[UUID]:
    """The ids of every delivery of a shopper's interventions (for the apps that log sends by id)."""
    return list(Delivery.objects.filter(intervention__profile_id=profile_id).values_list("id", flat=True))
