"""Reads over shoppers' profiles and segments."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from django.db import DataError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from personalization.models import Profile, PushToken, Segment
from personalization.rules import RuleError, compile_rule

_T = TypeVar("_T")


def segment_members(*, segment: Segment) -> QuerySet[Profile]:
    """The profiles a segment selects, as one database query (erased shoppers never match).

    Raises RuleError when the stored rule does not compile (one saved before today's validation)."""
    return Profile.objects.filter(compile_rule(segment.rules).to_q(), erased_at__isnull=True)


def _run_segment_query(segment: Segment, query: Callable[[], _T]) -> _T:
    """Run a query over a segment's members; a rule the database refuses becomes a RuleError.

    Every rule that compiles today also runs; this guards rules stored before a limit existed, so that
    no page answers 500 for one. The savepoint keeps the caller's transaction usable after a refusal."""
    try:
        with transaction.atomic():
            return query()
    except (DataError, UnicodeEncodeError) as error:
        raise RuleError(
            f"the rules of segment {segment.name!r} cannot run as a query; edit them ({type(error).__name__})"
        ) from None


def segment_estimate_size(*, segment: Segment) -> int:
    """Count the segment's members now and remember the figure (shown in the admin) with its time."""
    members = segment_members(segment=segment)
    size = _run_segment_query(segment, members.count)
    now = timezone.now()
    Segment.objects.filter(pk=segment.pk).update(estimated_size=size, estimated_at=now)
    segment.estimated_size, segment.estimated_at = size, now
    return size


def segment_recent_members(*, segment: Segment, limit: int) -> list[tuple[int, str]]:
    """(pk, user_id) of the segment's members seen most recently."""
    members = (
        segment_members(segment=segment)
        .order_by(F("last_seen_at").desc(nulls_last=True))
        .values_list("pk", "user_id")[:limit]
    )
    return _run_segment_query(segment, lambda: list(members))


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


def segment_named_exists(*, name: str) -> bool:
    return Segment.objects.filter(name=name).exists()
