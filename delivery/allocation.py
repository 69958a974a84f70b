"""What the decision path learns from outcomes: bandit variant allocations and the population's channel rates.

Computed by a beat task (``allocations_refresh``, every minute), never in the decision path:

* for each active triggered campaign with ``use_bandit``, a Beta posterior per treatment variant on the
  campaign's goal — ``conversion``: shoppers exposed (trials) and shoppers with an attributed order
  (successes), the report's own counts (tracking.reports); ``click``: interventions and those clicked —
  with a Beta(1, 1) prior; the variant's share of the treatment traffic is the probability that it is the
  best (Thompson sampling by probability matching, estimated from ``DRAWS`` draws), with a floor of
  ``MIN_SHARE`` so that no variant stops learning and no logged propensity is zero. The control keeps its
  fixed share (its weight) and the holdout its percentage, so results stay measurable;
* per channel, the population's engagement rate over the last ``CHANNEL_RATE_DAYS`` days: the prior of
  the per-shopper channel choice (delivery.channel_selection).

Each campaign's allocation is one Redis key (``ie:bandit:allocation:<id>``, expiring after
``KEY_TTL_SECONDS``: a stopped beat falls back to the weights instead of freezing an old allocation),
with the set of those campaigns and the channel rates beside it; every computation is also kept as an
``AllocationSnapshot`` row (the admin's history). Every consumer process reads them through
:class:`LearnedCache`, refreshed by a background thread every ``REFRESH_SECONDS``, so all processes
use the same allocation within ``REFRESH_SECONDS`` of a computation and a batch never waits for Redis.

Assignment is by the shopper's fixed place per (campaign, user) in the shares (campaigns.selectors.
variant_allocate): a shopper keeps their variant while the shares hold, a control shopper always stays
in the control, and a treatment shopper may move to another treatment variant when the learned shares
move across their place. Every decision logs the share it was assigned with (``Intervention.propensity``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from campaigns.models import Campaign, Variant
from campaigns.selectors import campaigns_active_triggered
from core.observability import get_logger
from core.redis import redis_sync
from delivery.models import AllocationSnapshot
from tracking.reports import ReportPeriod, conversion_counts, exposure_counts
from tracking.selectors import engagement_by_channel

logger = get_logger(__name__)

ALLOCATION_KEY = "ie:bandit:allocation:{campaign_id}"
CAMPAIGNS_KEY = "ie:bandit:campaigns"
CHANNEL_RATES_KEY = "ie:bandit:channel-rates"
KEY_TTL_SECONDS = 600
REFRESH_SECONDS = 15.0
DRAWS = 20_000
MIN_SHARE = 0.01
CHANNEL_RATE_DAYS = 30
SNAPSHOT_KEEP_DAYS = 30


@dataclass(frozen=True)
class Posterior:
    trials: int
    successes: int

    @property
    def alpha(self) -> float:
        return 1.0 + self.successes

    @property
    def beta(self) -> float:
        return 1.0 + max(self.trials - self.successes, 0)


def thompson_shares(
    *, posteriors: Sequence[Posterior], draws: int = DRAWS, seed: int | None = None, floor: float = MIN_SHARE
) -> list[float]:
    """P(each arm is the best) under its Beta posterior, from ``draws`` joint draws, then mixed with the
    uniform share so that every arm keeps at least ``floor``."""
    count = len(posteriors)
    if count == 0:
        return []
    if count == 1:
        return [1.0]
    import numpy as np

    rng = np.random.default_rng(seed)
    alpha = np.array([p.alpha for p in posteriors])[:, None]
    beta = np.array([p.beta for p in posteriors])[:, None]
    samples = rng.beta(alpha, beta, size=(count, draws))
    best = np.bincount(np.argmax(samples, axis=0), minlength=count) / draws
    floor = min(floor, 1.0 / count)
    return [float(floor + (1 - count * floor) * share) for share in best]


@dataclass(frozen=True)
class Allocation:
    campaign_id: int
    goal: str
    shares: dict[int, float]  # treatment variant id -> share of the treatment traffic
    posteriors: dict[int, Posterior]


def _treatments(campaign: Campaign) -> list[Variant]:
    return sorted(
        (v for v in campaign.variants.all() if v.weight > 0 and not v.is_control), key=lambda v: v.pk
    )


def allocations_compute(*, campaigns: Sequence[Campaign], seed: int | None = None) -> list[Allocation]:
    """The allocation of each bandit campaign from every stored outcome: two grouped queries in all."""
    if not campaigns:
        return []
    ids = [c.pk for c in campaigns]
    exposures = {
        (r["campaign_id"], r["group_variant"]): r
        for r in exposure_counts(campaign_ids=ids, period=ReportPeriod())
    }
    conversions = {
        (r["campaign_id"], r["group_variant"]): r
        for r in conversion_counts(campaign_ids=ids, period=ReportPeriod())
    }
    allocations = []
    for campaign in campaigns:
        posteriors: dict[int, Posterior] = {}
        for variant in _treatments(campaign):
            exposed = exposures.get((campaign.pk, variant.pk), {})
            if campaign.bandit_goal == Campaign.BanditGoal.CLICK:
                trials, successes = int(exposed.get("exposures") or 0), int(exposed.get("clicked") or 0)
            else:
                converted = conversions.get((campaign.pk, variant.pk), {})
                trials, successes = int(exposed.get("users") or 0), int(converted.get("converters") or 0)
            posteriors[variant.pk] = Posterior(trials=trials, successes=min(successes, trials))
        shares = thompson_shares(posteriors=list(posteriors.values()), seed=seed)
        allocations.append(
            Allocation(
                campaign_id=campaign.pk,
                goal=campaign.bandit_goal,
                shares=dict(zip(posteriors, shares, strict=True)),
                posteriors=posteriors,
            )
        )
    return allocations


def channel_rates_compute(*, now: datetime) -> dict[str, float]:
    return {
        channel: successes / tries
        for channel, (tries, successes) in engagement_by_channel(
            since=now - timedelta(days=CHANNEL_RATE_DAYS)
        ).items()
        if tries > 0
    }


def allocations_refresh(*, now: datetime | None = None, seed: int | None = None) -> list[AllocationSnapshot]:
    """Compute every bandit campaign's allocation and the channel rates, publish them in Redis (one
    pipeline) and record the allocations as snapshots. Safe to run twice: the later run wins in Redis and
    both stay in the history."""
    now = now or timezone.now()
    campaigns = [c for c in campaigns_active_triggered() if c.use_bandit]
    allocations = allocations_compute(campaigns=campaigns, seed=seed)
    rates = channel_rates_compute(now=now)
    pipe = redis_sync().pipeline(transaction=True)
    pipe.delete(CAMPAIGNS_KEY)
    for allocation in allocations:
        body = {
            "goal": allocation.goal,
            "computed_at": now.isoformat(),
            "shares": {str(k): v for k, v in allocation.shares.items()},
        }
        pipe.set(
            ALLOCATION_KEY.format(campaign_id=allocation.campaign_id), json.dumps(body), ex=KEY_TTL_SECONDS
        )
        pipe.sadd(CAMPAIGNS_KEY, allocation.campaign_id)
    pipe.set(CHANNEL_RATES_KEY, json.dumps(rates), ex=KEY_TTL_SECONDS)
    pipe.execute()
    snapshots = AllocationSnapshot.objects.bulk_create(
        [
            AllocationSnapshot(
                campaign_id=a.campaign_id,
                computed_at=now,
                goal=a.goal,
                shares={str(k): round(v, 6) for k, v in a.shares.items()},
                posteriors={
                    str(k): {"alpha": p.alpha, "beta": p.beta, "trials": p.trials, "successes": p.successes}
                    for k, p in a.posteriors.items()
                },
            )
            for a in allocations
        ]
    )
    AllocationSnapshot.objects.filter(computed_at__lt=now - timedelta(days=SNAPSHOT_KEEP_DAYS)).delete()
    return snapshots


# --- The consumers' view ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Learned:
    """What one process currently knows: never read from Redis by the decision path itself."""

    shares: dict[int, dict[int, float]] = field(default_factory=dict)  # campaign -> variant -> share
    channel_rates: dict[str, float] = field(default_factory=dict)
    loaded_at: float = 0.0


class LearnedCache:
    """The learned parameters of this process, refreshed from Redis by a daemon thread.

    ``current()`` returns what was last loaded without any I/O, except the very first call of a process
    (one synchronous load, so a fresh consumer does not decide its first batches on the weights)."""

    def __init__(self, *, interval: float = REFRESH_SECONDS) -> None:
        self.interval = interval
        self._learned: Learned | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None

    def current(self) -> Learned:
        learned = self._learned
        if learned is not None and self._pid == os.getpid():
            return learned
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="learned-cache", daemon=True).start()
            if self._learned is None:
                try:
                    return self.refresh()
                except Exception as exc:  # Redis down: decide on the weights, the thread retries
                    logger.warning("learned_load_failed", error=str(exc))
                    return Learned()
            return self._learned

    def refresh(self) -> Learned:
        """Load from Redis now (two round trips) and return it."""
        client = redis_sync()
        ids, raw_rates = (
            client.pipeline(transaction=False).smembers(CAMPAIGNS_KEY).get(CHANNEL_RATES_KEY).execute()
        )
        campaign_ids = sorted(int(i) for i in ids)
        bodies = (
            client.mget([ALLOCATION_KEY.format(campaign_id=i) for i in campaign_ids]) if campaign_ids else []
        )
        shares: dict[int, dict[int, float]] = {}
        for campaign_id, body in zip(campaign_ids, bodies, strict=True):
            if body is None:
                continue
            parsed: dict[str, Any] = json.loads(body)
            shares[campaign_id] = {int(k): float(v) for k, v in parsed.get("shares", {}).items()}
        rates = {str(k): float(v) for k, v in json.loads(raw_rates).items()} if raw_rates else {}
        learned = Learned(shares=shares, channel_rates=rates, loaded_at=time.monotonic())
        self._learned = learned
        return learned

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.refresh()
            except Exception as exc:
                logger.warning("learned_refresh_failed", error=str(exc))


learned_cache = LearnedCache()
