"""Reads over interventions and deliveries for the apps above: each returns what its caller needs, in one
query, with the index that serves it named where it matters.

Other apps read these tables only through here (or, for raw SQL reports, through the table names below).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.utils import timezone

from interventions.models import Delivery, Intervention

# The table's name, for the reports and attribution queries that join it in raw SQL (reads only).
INTERVENTION_TABLE = Intervention._meta.db_table

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


# --- Engagement: delivered, displayed, opened, clicked ---


def interventions_existing(*, intervention_ids: Iterable[UUID]) -> set[UUID]:
    """Which of these intervention ids exist, in one query (to refuse a batch naming unknown ones)."""
    wanted = set(intervention_ids)
    if not wanted:
        return set()
    return set(Intervention.objects.filter(pk__in=wanted).values_list("pk", flat=True))


def _onsite_deliverable() -> QuerySet[Intervention]:
    """Pending, unexpired on-site interventions that have a seq (the WebSocket replay log)."""
    return Intervention.objects.filter(
        channel="onsite", status=Intervention.Status.PENDING, seq__isnull=False
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))


def interventions_onsite_replay(*, user_id: str, after_seq: int, limit: int) -> list[Intervention]:
    """A shopper's pending, unexpired on-site interventions after ``after_seq``, in seq order; the
    (user_id, seq) index serves it."""
    return list(_onsite_deliverable().filter(user_id=user_id, seq__gt=after_seq).order_by("seq")[:limit])


def interventions_onsite_pending(*, intervention_ids: Iterable[UUID | str]) -> list[Intervention]:
    """Those of ``intervention_ids`` still to push on site (pending, unexpired, with a seq), by user, seq."""
    return list(_onsite_deliverable().filter(id__in=list(intervention_ids)).order_by("user_id", "seq"))


def interventions_onsite_of_user(*, user_id: str, intervention_ids: Iterable[UUID]) -> list[Intervention]:
    """Those of ``intervention_ids`` that are ``user_id``'s on-site interventions, whatever their status."""
    return list(Intervention.objects.filter(id__in=list(intervention_ids), user_id=user_id, channel="onsite"))


# --- Decisions: batch writes, cancels, releases, expiry ------------------------------------------------
#
# Used by the decision path (delivery): what was decided before, what an exit event may cancel, and the
# interventions as the REST API shows them.


def interventions_decided_query(*, pairs: Set[tuple[int, str]]) -> tuple[str, list[Any]] | None:
    """The query of the (campaign, trigger event) pairs already decided: (sql, params), or None.

    Returned rather than run: the decision path sends it in the round trip that locks the batch's profiles.
    The exact pairs travel as two parallel arrays joined to the unique (campaign, trigger event) index:
    one index probe per pair whatever the table's statistics say. ``campaign_id = ANY(…) AND
    trigger_event_id = ANY(…)`` let the planner pick the campaign index and scan every intervention of
    the batch's campaigns (25 ms at 36,000 rows, growing); ``IN (SELECT jsonb_array_elements_text(…))``
    scanned the whole table."""
    if not pairs:
        return None
    table = Intervention._meta.db_table
    ordered = sorted(pairs)
    sql = (
        "SELECT i.campaign_id, i.trigger_event_id "  # noqa: S608  (fixed identifier)
        f'FROM unnest(%s::bigint[], %s::text[]) AS k(campaign_id, trigger_event_id) JOIN "{table}" i '
        "ON i.campaign_id = k.campaign_id AND i.trigger_event_id = k.trigger_event_id"
    )
    return sql, [[c for c, _ in ordered], [e for _, e in ordered]]


def interventions_open_for_exit(*, pairs: Set[tuple[str, int]]) -> QuerySet[Intervention]:
    """Pending or scheduled interventions of these (user_id, campaign_id) pairs, locked for update: call it
    inside the transaction that changes them."""
    users = {user_id for user_id, _ in pairs}
    campaigns = {campaign_id for _, campaign_id in pairs}
    return (
        Intervention.objects.select_for_update(of=("self",))
        .filter(
            user_id__in=users,
            campaign_id__in=campaigns,
            status__in=[Intervention.Status.PENDING, Intervention.Status.SCHEDULED],
        )
        .order_by("pk")
    )


def interventions_list(
    *,
    user_id: str | None = None,
    campaign_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
) -> QuerySet[Intervention]:
    """Interventions newest first, with campaign, variant and deliveries loaded: two queries a page."""
    queryset = (
        Intervention.objects.select_related("campaign", "variant")
        .prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.order_by("queued_at", "id")))
        .order_by("-created_at", "-id")
    )
    if user_id is not None:
        queryset = queryset.filter(user_id=user_id)
    if campaign_id is not None:
        queryset = queryset.filter(campaign_id=campaign_id)
    if status is not None:
        queryset = queryset.filter(status=status)
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    return queryset


def intervention_for_trigger(*, campaign_id: int, trigger_event_id: str) -> Intervention | None:
    """The decision already taken for (campaign, trigger event), if any: they are unique together."""
    return interventions_list().filter(campaign_id=campaign_id, trigger_event_id=trigger_event_id).first()


# --- Send runs of scheduled campaigns (delivery/runs.py) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionTaken:
    id: UUID
    status: str
    suppression_reason: str


def decisions_for_triggers(*, campaign_id: int, trigger_event_ids: Iterable[str]) -> dict[str, DecisionTaken]:
    """The decisions taken for these trigger events of one campaign, by trigger event id: one query on the
    (campaign, trigger event) key."""
    rows = Intervention.objects.filter(
        campaign_id=campaign_id, trigger_event_id__in=list(trigger_event_ids)
    ).values_list("trigger_event_id", "id", "status", "suppression_reason")
    return {event_id: DecisionTaken(pk, status, reason) for event_id, pk, status, reason in rows}


def deliveries_count_by_status(*, intervention_ids: QuerySet[Any] | Sequence[UUID]) -> dict[str, int]:
    """How many deliveries of these interventions (a list or a subquery of ids) are in each status."""
    rows = (
        Delivery.objects.filter(intervention_id__in=intervention_ids)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return dict(rows)


# --- Data rights: a shopper's erasure --------------------------------------------------------------


def delivery_ids_of_profile(*, profile_id: int) -> list[UUID]:
    """The ids of every delivery of a shopper's interventions (for the apps that log sends by id)."""
    return list(Delivery.objects.filter(intervention__profile_id=profile_id).values_list("id", flat=True))


# --- Opt-outs: what a shopper's opt-out of a channel answers ---------------------------------------


def delivery_latest_sent(*, profile_id: int, channel: str) -> Delivery | None:
    """The shopper's last delivery on ``channel`` that left (sent or delivered), with its intervention."""
    return (
        Delivery.objects.filter(
            intervention__profile_id=profile_id,
            channel=channel,
            sent_at__isnull=False,
        )
        .select_related("intervention")
        .order_by("-sent_at")
        .first()
    )


# --- Raw exports: every row of a period, for analysts (tracking/exports.py) ----------------------------

# What the raw exports carry, as ORM paths (the column is the path with "__" read as "_"): identifiers,
# states and times, not message content or trigger context.
INTERVENTION_EXPORT_FIELDS = (
    "id",
    "created_at",
    "campaign_id",
    "variant_id",
    "user_id",
    "trigger",
    "trigger_event_id",
    "status",
    "suppression_reason",
    "is_holdout",
    "channel",
    "scheduled_for",
    "delivered_at",
    "expires_at",
)
DELIVERY_EXPORT_FIELDS = (
    "id",
    "queued_at",
    "intervention_id",
    "intervention__campaign_id",
    "intervention__variant_id",
    "intervention__user_id",
    "channel",
    "provider",
    "status",
    "attempts",
    "error_kind",
    "sent_at",
    "delivered_at",
    "failed_at",
)


def interventions_for_export(
    *, start: datetime | None, end: datetime | None, campaign_id: int | None
) -> QuerySet[Intervention, tuple[Any, ...]]:
    """Interventions decided in ``[start, end)`` (of one campaign), oldest first, as tuples of
    ``INTERVENTION_EXPORT_FIELDS``. Iterate it with ``.iterator(chunk_size=...)``: a server-side cursor."""
    rows = Intervention.objects.all()
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    return rows.order_by("created_at", "id").values_list(*INTERVENTION_EXPORT_FIELDS)


def deliveries_for_export(
    *, start: datetime | None, end: datetime | None, campaign_id: int | None
) -> QuerySet[Delivery, tuple[Any, ...]]:
    """Deliveries queued in ``[start, end)`` (of one campaign's interventions), oldest first, as tuples of
    ``DELIVERY_EXPORT_FIELDS``."""
    rows = Delivery.objects.all()
    if start is not None:
        rows = rows.filter(queued_at__gte=start)
    if end is not None:
        rows = rows.filter(queued_at__lt=end)
    if campaign_id is not None:
        rows = rows.filter(intervention__campaign_id=campaign_id)
    return rows.order_by("queued_at", "id").values_list(*DELIVERY_EXPORT_FIELDS)
