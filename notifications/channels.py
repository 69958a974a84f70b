"""Can this shopper be reached on this channel right now, and when do their quiet hours end?

Asked twice: by the decision path when it picks a channel, and again by the send task just before the
provider call, because consent, contact points and quiet hours may have changed in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from personalization.models import Profile


def channel_reachable(*, profile: Profile, channel: str, push_tokens: Sequence[str] | None = None) -> bool:
    """Consent given, a usable contact point, not erased, not suppressed after a hard bounce.

    ``push_tokens``: the shopper's active tokens when the caller loaded them already (a send batch does).
    """
    if profile.erased_at is not None or not profile.has_consent(channel):
        return False
    if channel == "email":
        return bool(profile.email) and profile.email_suppressed_at is None
    if channel == "sms":
        return bool(profile.phone) and profile.phone_suppressed_at is None
    if channel == "push":
        if push_tokens is not None:
            return bool(push_tokens)
        return profile.push_tokens.filter(is_active=True).exists()
    return channel == "onsite"


def profile_zone(*, profile: Profile) -> ZoneInfo:
    try:
        return ZoneInfo(profile.timezone) if profile.timezone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def quiet_hours_end(*, profile: Profile, at: datetime) -> datetime | None:
    """The moment the shopper's quiet hours end if ``at`` falls inside them, else None.

    The window is in the shopper's own zone and may wrap midnight (22:00-08:00).
    """
    start, end = profile.quiet_hours_start, profile.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    local = at.astimezone(profile_zone(profile=profile))
    now_t = local.timetz().replace(tzinfo=None)
    if start < end:
        inside = start <= now_t < end
        end_day = local.date()
    else:
        inside = now_t >= start or now_t < end
        end_day = local.date() + timedelta(days=1) if now_t >= start else local.date()
    if not inside:
        return None
    return _local_moment(day=end_day, at=end, zone=local.tzinfo)


def _local_moment(*, day: object, at: time, zone: object) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)  # type: ignore[arg-type]
