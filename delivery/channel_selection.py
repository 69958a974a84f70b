"""Which channel carries an intervention (SPEC §5, channel selection).

* ``fixed`` — the campaign's first channel, or nothing;
* ``first_available`` — the first usable channel in the campaign's order; on-site counts only when the
  shopper is on the site right now (a pop-up for someone who left would wait for a return that may never
  come, while an email reaches them now);
* ``optimized`` — on the site → on-site; otherwise the usable channel with the best expected engagement
  for this shopper, learned from their history (``Profile.engagement``), the campaign's order breaking ties.

"Usable" is decided by the caller (template present, consent and contact point, outside quiet hours).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from personalization.models import Channel

# Engagement signals and how much each one says about a channel working for this shopper.
_WEIGHTS = {"clicked": 1.0, "opened": 0.5, "displayed": 0.5}
_EXPOSURES = ("delivered", "sent")


def engagement_rate(*, engagement: Mapping[str, Any], channel: str) -> float:
    """Expected engagement for one channel, with a prior of one success in two tries.

    The prior keeps a channel with no history from scoring 0 (never tried again) or 1 (always chosen
    after one lucky click).
    """
    counters = engagement.get(channel) or {}
    if not isinstance(counters, Mapping):
        return 0.5
    successes = sum(weight * float(counters.get(name, 0) or 0) for name, weight in _WEIGHTS.items())
    tries = sum(float(counters.get(name, 0) or 0) for name in _EXPOSURES)
    tries = max(tries, successes)
    return (successes + 1.0) / (tries + 2.0)


def channel_choose(
    *,
    strategy: str,
    channels: Sequence[str],
    usable: Callable[[str], bool],
    online: bool,
    engagement: Mapping[str, Any],
) -> str | None:
    """The channel to use, or None when no channel of the campaign can carry it now."""
    if not channels:
        return None
    if strategy == "fixed":
        first = channels[0]
        return first if usable(first) else None
    if strategy == "optimized":
        if online and Channel.ONSITE in channels and usable(Channel.ONSITE):
            return Channel.ONSITE
        candidates = [channel for channel in channels if channel != Channel.ONSITE and usable(channel)]
        if not candidates:
            return None
        # max() keeps the first of equal scores: the campaign's order breaks ties.
        return max(candidates, key=lambda channel: engagement_rate(engagement=engagement, channel=channel))
    for channel in channels:  # first_available
        if channel == Channel.ONSITE and not online:
            continue
        if usable(channel):
            return channel
    return None
