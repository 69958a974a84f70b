"""Reads over shoppers' profiles and segments."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet
from django.utils import timezone

from personalization.models import Profile, PushToken, Segment
from personalization.rules import compile_rule


def segment_members(*, segment: Segment) -> QuerySet[Profile]:
    """The profiles a segment selects, as one database query (erased shoppers never match)."""
    return Profile.objects.filter(compile_rule(segment.rules).to_q(), erased_at__isnull=True)


def segment_estimate_size(*, segment: Segment) -> int:
    """Count the segment's members now and remember the figure (shown in the admin) with its time."""
    size = segment_members(segment=segment).count()
    now = timezone.now()
    Segment.objects.filter(pk=segment.pk).update(estimated_size=size, estimated_at=now)
    segment.estimated_size, segment.estimated_at = size, now
    return size


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.order_by("name")


def segment_get(*, segment_id: int) -> Segment | None:
    return Segment.objects.filter(pk=segment_id).first()


# --- Push tokens (used by notifications) -------------------------------------------------------------


def push_tokens_active(*, profile_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each shopper's active push tokens, oldest first, in one query for a whole batch."""
    tokens: dict[int, list[str]] = {}
    active = PushToken.objects.filter(profile_id__in=list(profile_ids), is_active=True).order_by("id")
    for profile_id, token in active.values_list("profile_id", "token"):
        tokens.setdefault(profile_id, []).append(token)
    return tokens
