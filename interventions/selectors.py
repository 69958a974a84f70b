"""Reads over interventions and deliveries for the apps above: each returns what its caller needs, in one
query, with the index that serves it named where it matters.

Other apps read these tables only through here (or, for raw SQL reports, through the table names below).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db.models import Q, QuerySet
from django.utils import timezone

from interventions.models import Intervention

# The table's name, for the reports and attribution queries that join it in raw SQL (reads only).
INTERVENTION_TABLE = Intervention._meta.db_table


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
