"""Writes on shoppers' profiles and segments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from personalization.models import Profile

# --- Batched writes for the Kafka decision path and tracking ingest (appended by the decision path) ---


@dataclass
class ProfileChange:
    """What one event says about a shopper; several changes for one user are applied in order."""

    user_id: str
    seen_at: datetime
    user: Mapping[str, Any] | None = None
    cart: Mapping[str, Any] | None = None
    order_revenue: Decimal | None = None
    order_at: datetime | None = None


_CONTACT_FIELDS = {"email": 254, "phone": 32, "first_name": 120, "locale": 16, "timezone": 64}


def profiles_lock(*, user_ids: Iterable[str]) -> dict[str, Profile]:
    """Lock (creating the missing ones) the profiles of ``user_ids``, in a stable order so two batches
    touching the same shoppers never deadlock. Must run inside a transaction."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return {}
    profiles = {
        p.user_id: p
        for p in Profile.objects.select_for_update().filter(user_id__in=wanted).order_by("user_id")
    }
    missing = [user_id for user_id in wanted if user_id not in profiles]
    if missing:
        # ignore_conflicts: a concurrent writer may have created one of them since our read.
        Profile.objects.bulk_create([Profile(user_id=user_id) for user_id in missing], ignore_conflicts=True)
        for profile in Profile.objects.select_for_update().filter(user_id__in=missing).order_by("user_id"):
            profiles[profile.user_id] = profile
    return profiles


def profile_changes_apply(*, profiles: Mapping[str, Profile], changes: Sequence[ProfileChange]) -> None:
    """Apply event-borne changes to locked profiles and write them back with one bulk update."""
    touched: dict[str, Profile] = {}
    now = timezone.now()
    for change in changes:
        profile = profiles[change.user_id]
        touched[change.user_id] = profile
        profile.updated_at = now
        if profile.last_seen_at is None or change.seen_at > profile.last_seen_at:
            profile.last_seen_at = change.seen_at
        if change.user and profile.erased_at is None:
            for field, max_length in _CONTACT_FIELDS.items():
                value = change.user.get(field)
                if isinstance(value, str) and value:
                    setattr(profile, field, value[:max_length])
            attributes = change.user.get("attributes")
            if isinstance(attributes, dict) and attributes:
                profile.attributes = {**profile.attributes, **attributes}
        if change.cart is not None:
            profile.last_cart = dict(change.cart)
        if change.order_revenue is not None:
            profile.orders_count += 1
            profile.total_revenue = (profile.total_revenue or Decimal(0)) + change.order_revenue
            profile.last_order_at = change.order_at or change.seen_at
    if touched:
        Profile.objects.bulk_update(
            list(touched.values()),
            [
                "last_seen_at",
                *_CONTACT_FIELDS,
                "attributes",
                "last_cart",
                "orders_count",
                "total_revenue",
                "last_order_at",
                "updated_at",
            ],
        )


@transaction.atomic
def profile_upsert_many(*, changes: Sequence[ProfileChange]) -> dict[str, Profile]:
    """Create or update the profiles that ``changes`` describe; returns them (locked) by user id."""
    profiles = profiles_lock(user_ids=[change.user_id for change in changes])
    profile_changes_apply(profiles=profiles, changes=changes)
    return profiles


@transaction.atomic
def profile_engagement_record_many(*, increments: Mapping[str, Mapping[str, Mapping[str, int]]]) -> None:
    """Add to the per-channel engagement counters: ``{user_id: {channel: {"clicked": 1}}}``.

    The counters feed the optimised channel choice (best expected engagement per shopper)."""
    if not increments:
        return
    profiles = profiles_lock(user_ids=increments.keys())
    now = timezone.now()
    for user_id, channels in increments.items():
        profile = profiles[user_id]
        profile.updated_at = now
        engagement = dict(profile.engagement or {})
        for channel, counters in channels.items():
            current = dict(engagement.get(channel) or {})
            for name, count in counters.items():
                current[name] = int(current.get(name, 0)) + count
            engagement[channel] = current
        profile.engagement = engagement
    Profile.objects.bulk_update([profiles[u] for u in increments], ["engagement", "updated_at"])


def profile_onsite_seq_allocate(
    *, profiles: Mapping[str, Profile], counts: Mapping[str, int]
) -> dict[str, int]:
    """Reserve ``counts[user_id]`` on-site sequence numbers on locked profiles; returns the first of each.

    The caller holds the row locks (``profiles_lock``) so two writers never hand out the same number;
    the new values are written with one bulk update.
    """
    first: dict[str, int] = {}
    for user_id, count in counts.items():
        profile = profiles[user_id]
        first[user_id] = profile.onsite_seq + 1
        profile.onsite_seq += count
    if counts:
        Profile.objects.bulk_update([profiles[u] for u in counts], ["onsite_seq"])
    return first
