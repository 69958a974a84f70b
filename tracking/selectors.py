"""Reads for tracking ingest."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from interventions.models import Intervention


def interventions_existing(*, intervention_ids: Iterable[UUID]) -> set[UUID]:
    """Which of these intervention ids exist, in one query (to refuse a batch naming unknown ones)."""
    wanted = set(intervention_ids)
    if not wanted:
        return set()
    return set(Intervention.objects.filter(pk__in=wanted).values_list("pk", flat=True))
