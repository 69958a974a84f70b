"""Reads over shoppers' profiles and segments."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from django.conf import settings
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


def segment_member_zones(*, segment: Segment, sample: int = 1000, limit: int = 3) -> list[str]:
    """The time zones most common among a sample of the segment's members (those who gave one), most
    common first: a bounded read, whatever the segment's size."""
    zones = segment_members(segment=segment).exclude(timezone="").values_list("timezone", flat=True)[:sample]
    counted = Counter(_run_segment_query(segment, lambda: list(zones)))
    return [zone for zone, _ in counted.most_common(limit)]


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


def push_subscription_keys(*, tokens: Iterable[str]) -> dict[str, dict[str, str]]:
    """The encryption keys of web tokens (PushSubscription endpoints) that are active, by token."""
    rows = PushToken.objects.filter(
        token__in=list(tokens), platform=PushToken.Platform.WEB, is_active=True
    ).values_list("token", "keys")
    return {token: dict(keys) for token, keys in rows if keys}


def push_token_is_web(token: str) -> bool:
    """A web token is its subscription's endpoint URL; FCM and APNs tokens never hold "://"."""
    return "://" in token


def segment_named_exists(*, name: str) -> bool:
    return Segment.objects.filter(name=name).exists()


# --- Send runs of scheduled campaigns (used by delivery) -----------------------------------------------


def profiles_ordered_since(*, user_ids: Iterable[str], since: datetime) -> set[str]:
    """Which of these shoppers placed an order after ``since`` (one query on the user_id key)."""
    return set(
        Profile.objects.filter(user_id__in=list(user_ids), last_order_at__gt=since).values_list(
            "user_id", flat=True
        )
    )


# --- Erasure: the tombstone that keeps an erased shopper erased -------------------------------------

ERASED_PREFIX = "erased:"


@functools.cache
def _erasure_key() -> bytes:
    return hashlib.sha256(b"personalization.erasure:" + settings.SECRET_KEY.encode()).digest()


def shopper_erased_id(*, user_id: str) -> str:
    """The one-way id an erased shopper's rows are keyed by instead of ``user_id``: ``erased:`` and a
    keyed hash (HMAC-SHA256 under a key derived from ``SECRET_KEY``). Keyed, because shop user ids are
    often short or sequential and a plain hash of them is reversed by trying them all; the same id for
    the same shopper, so campaign results still count one shopper once. Rotating ``SECRET_KEY`` forgets
    every erasure's link to later events (docs/privacy.md)."""
    digest = hmac.new(_erasure_key(), user_id.encode(), hashlib.sha256).hexdigest()
    return f"{ERASED_PREFIX}{digest}"


def profiles_erased(*, profiles: Mapping[str, Profile]) -> set[str]:
    """The user ids, among locked ``profiles`` (as ``profiles_lock`` returns them), of erased shoppers:
    their events must decide and record nothing until a new consent (docs/privacy.md)."""
    return {user_id for user_id, profile in profiles.items() if profile.erased_at is not None}
