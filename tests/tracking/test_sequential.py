"""Always-valid (sequential) inference: the mSPRT's error rate under daily peeking, by seeded simulation."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

from tracking import analytics

RUNS = 1000
DAYS = 30
PER_DAY = 200  # shoppers per group and day
RATE = 0.05
MDE = 0.01


def _daily_cumulative(rng: np.random.Generator, rate: float) -> np.ndarray:
    return np.cumsum(rng.binomial(PER_DAY, rate, size=(RUNS, DAYS)), axis=1)


def test_it_keeps_the_false_positive_rate_under_five_percent_when_peeking_every_day():
    # given 1,000 seeded A/A experiments (both groups convert at 5 %) looked at every day for 30 days
    rng = np.random.default_rng(20261204)
    a, b = _daily_cumulative(rng, RATE), _daily_cumulative(rng, RATE)
    started = time.monotonic()

    # when each look computes the always-valid p-value, and the fixed-horizon one for comparison
    sequential_rejected = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        for day in range(DAYS):
            n = PER_DAY * (day + 1)
            result = analytics.sequential_difference(
                successes=int(b[run, day]),
                trials=n,
                baseline_successes=int(a[run, day]),
                baseline_trials=n,
                mixing_sd=MDE,
            )
            assert result is not None
            if result.p_value < 0.05:
                sequential_rejected[run] = True
                break
    sizes = PER_DAY * np.arange(1, DAYS + 1)
    pooled = (a + b) / (2 * sizes)
    z = (b - a) / sizes / np.sqrt(pooled * (1 - pooled) * 2 / sizes)
    fixed_rejected = (2 * stats.norm.sf(np.abs(z)) < 0.05).any(axis=1)
    elapsed = time.monotonic() - started

    # then the always-valid test stops wrongly in at most 5 % of the runs, while the fixed-horizon test
    # peeked at daily does so far more often (the reason the always-valid one exists)
    assert sequential_rejected.mean() <= 0.05
    assert fixed_rejected.mean() > 0.15
    assert elapsed < 10


def test_it_covers_a_true_difference_at_every_look_and_finds_it():
    # given 1,000 seeded experiments where B converts at 7 % against 5 %
    rng = np.random.default_rng(7)
    a, b = _daily_cumulative(rng, RATE), _daily_cumulative(rng, RATE + 0.02)

    # when the always-valid interval is computed every day
    ever_missed = np.zeros(RUNS, dtype=bool)
    declared = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        for day in range(DAYS):
            n = PER_DAY * (day + 1)
            result = analytics.sequential_difference(
                successes=int(b[run, day]),
                trials=n,
                baseline_successes=int(a[run, day]),
                baseline_trials=n,
                mixing_sd=MDE,
            )
            assert result is not None
            assert result.interval is not None
            if not result.interval.low <= 0.02 <= result.interval.high:
                ever_missed[run] = True
            if result.interval.low > 0:
                declared[run] = True

    # then the interval held the true difference at every look in at least 95 % of runs, and the
    # difference was declared in most of them within the 30 days
    assert ever_missed.mean() <= 0.05
    assert declared.mean() > 0.9


def test_it_computes_the_mixture_likelihood_ratio_and_its_interval_by_the_formula():
    # given 120/1000 against 100/1000 and a mixing standard deviation of 2 points
    # when the sequential comparison is computed
    result = analytics.sequential_difference(
        successes=120, trials=1000, baseline_successes=100, baseline_trials=1000, mixing_sd=0.02
    )

    # then p = 1/Λ with Λ = sqrt(V/(V+τ²)) exp(τ²θ²/(2V(V+τ²))), and the interval is wider than the
    # fixed-horizon one around the same estimate
    assert result is not None
    assert result.interval is not None
    v = 0.12 * 0.88 / 1000 + 0.10 * 0.90 / 1000
    t2 = 0.02**2
    likelihood_ratio = math.sqrt(v / (v + t2)) * math.exp(t2 * 0.02**2 / (2 * v * (v + t2)))
    assert result.p_value == pytest.approx(min(1, 1 / likelihood_ratio))
    fixed_half_width = 1.959964 * math.sqrt(v)
    assert result.interval.high - result.difference > fixed_half_width
    assert result.interval.low == pytest.approx(2 * result.difference - result.interval.high)


def test_it_reports_the_power_reached_and_how_much_longer_to_resolve():
    # given 5 % baseline and a planned minimum effect of 1 point
    # when the power and the growth needed are computed at 2,000 and at 200,000 shoppers per group
    small = analytics.power_reached(baseline_rate=0.05, trials=2000, baseline_trials=2000, effect=0.01)
    large = analytics.power_reached(baseline_rate=0.05, trials=200_000, baseline_trials=200_000, effect=0.01)
    growth = analytics.growth_to_resolve(baseline_rate=0.05, trials=2000, baseline_trials=2000, effect=0.01)

    # then power grows with the sample to near certainty, and the test needs several times today's sample
    assert small is not None
    assert large is not None
    assert growth is not None
    assert 0.1 < small < 0.5
    assert large > 0.999
    assert 3 < growth < 20
