"""Which channel carries an intervention (SPEC §5, channel selection).

* ``fixed`` — the campaign's first channel, or nothing;
* ``first_available`` — the first usable channel in the campaign's order; on-site counts only when the
  shopper is on the site right now (a pop-up for someone who left would wait for a return that may never
  come, while an email reaches them now);
* ``optimized`` — on the site → on-site; otherwise one of the usable channels, chosen by Thompson sampling:
  a Beta-Bernoulli per shopper and channel whose prior is the population's rate on that channel
  (``PRIOR_STRENGTH`` pseudo-sends at the rate the beat task computes, delivery.allocation; ``DEFAULT_RATE``
  for a channel not measured yet), updated with the shopper's own counters (``Profile.engagement``). One
  draw per channel, the highest wins: a channel the shopper answers is chosen most of the time, the others
  now and then, as often as they might still be the better one. The probability of the choice (estimated
  from ``PROPENSITY_DRAWS`` draws) and the posterior means are returned with it, for the decision's log.

"Usable" is decided by the caller (template present, consent and contact point, outside quiet hours).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from personalization.models import Channel

if TYPE_CHECKING:
    import numpy as np

# Engagement signals and how much each one says about a channel working for this shopper.
_WEIGHTS = {"clicked": 1.0, "opened": 0.5, "displayed": 0.5}
_EXPOSURES = ("delivered", "sent")
# The population's rate weighs as much as this many sends of the shopper's own.
PRIOR_STRENGTH = 10.0
DEFAULT_RATE = 0.1
PROPENSITY_DRAWS = 256


@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    probability: float  # of choosing this channel for this decision, given what was usable
    reason: str  # e.g. "email 0.31 vs push 0.12, sampled email (p=0.83)"


def engagement_counts(*, engagement: Mapping[str, Any], channel: str) -> tuple[float, float]:
    """(successes, tries) of one shopper on one channel: a click counts 1, an open or a display ½."""
    counters = engagement.get(channel) or {}
    if not isinstance(counters, Mapping):
        return 0.0, 0.0
    successes = sum(weight * float(counters.get(name, 0) or 0) for name, weight in _WEIGHTS.items())
    tries = sum(float(counters.get(name, 0) or 0) for name in _EXPOSURES)
    return successes, max(tries, successes)


def channel_posterior(
    *, engagement: Mapping[str, Any], channel: str, prior: Mapping[str, float]
) -> tuple[float, float]:
    """(alpha, beta) of the shopper's Beta posterior on ``channel``."""
    rate = min(max(float(prior.get(channel, DEFAULT_RATE)), 0.001), 0.999)
    successes, tries = engagement_counts(engagement=engagement, channel=channel)
    return PRIOR_STRENGTH * rate + successes, PRIOR_STRENGTH * (1 - rate) + tries - successes


_rng: np.random.Generator | None = None


def _default_rng() -> np.random.Generator:
    global _rng
    if _rng is None:
        import numpy as np

        _rng = np.random.default_rng()
    return _rng


def channel_sample(
    *,
    candidates: Sequence[str],
    engagement: Mapping[str, Any],
    prior: Mapping[str, float],
    rng: np.random.Generator | None = None,
) -> ChannelChoice:
    """Thompson sampling over ``candidates`` (two or more): the first column of draws decides, all of
    them estimate how likely that choice was."""
    rng = rng or _default_rng()
    params = [channel_posterior(engagement=engagement, channel=c, prior=prior) for c in candidates]
    alpha = [[a] for a, _ in params]
    beta = [[b] for _, b in params]
    draws = rng.beta(alpha, beta, size=(len(candidates), PROPENSITY_DRAWS))
    best = draws.argmax(axis=0)
    chosen = int(best[0])
    probability = float((best == chosen).mean())
    means = sorted(
        ((a / (a + b), channel) for (a, b), channel in zip(params, candidates, strict=True)), reverse=True
    )
    summary = " vs ".join(f"{channel} {mean:.2f}" for mean, channel in means)
    channel = candidates[chosen]
    return ChannelChoice(
        channel=channel, probability=probability, reason=f"{summary}, sampled {channel} (p={probability:.2f})"
    )


def channel_choose(
    *,
    strategy: str,
    channels: Sequence[str],
    usable: Callable[[str], bool],
    online: bool,
    engagement: Mapping[str, Any],
    prior: Mapping[str, float] | None = None,
    rng: np.random.Generator | None = None,
) -> ChannelChoice | None:
    """The channel to use, or None when no channel of the campaign can carry it now."""
    if not channels:
        return None
    if strategy == "fixed":
        first = channels[0]
        return ChannelChoice(channel=first, probability=1.0, reason="fixed") if usable(first) else None
    if strategy == "optimized":
        if online and Channel.ONSITE in channels and usable(Channel.ONSITE):
            return ChannelChoice(channel=Channel.ONSITE, probability=1.0, reason="on the site")
        candidates = [channel for channel in channels if channel != Channel.ONSITE and usable(channel)]
        if not candidates:
            return None
        if len(candidates) == 1:
            return ChannelChoice(
                channel=candidates[0], probability=1.0, reason=f"only {candidates[0]} usable"
            )
        return channel_sample(candidates=candidates, engagement=engagement, prior=prior or {}, rng=rng)
    for channel in channels:  # first_available
        if channel == Channel.ONSITE and not online:
            continue
        if usable(channel):
            return ChannelChoice(channel=channel, probability=1.0, reason="first available")
    return None
