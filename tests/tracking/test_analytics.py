"""The statistics against reference values: Wilson, the z-test, Fisher, posteriors, SRM."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from tracking import analytics


def test_it_gives_the_wilson_interval_of_50_out_of_100():
    # given half of 100 shoppers converted
    # when the interval is computed
    interval = analytics.wilson_interval(successes=50, trials=100)

    # then it is the published Wilson 95 % interval (0.4038, 0.5962)
    assert interval is not None
    assert interval.low == pytest.approx(0.403831, abs=1e-6)
    assert interval.high == pytest.approx(0.596168, abs=1e-6)


def test_it_keeps_the_wilson_interval_inside_zero_and_one_and_has_none_without_trials():
    # given no conversions out of 20, and no shoppers at all
    # when intervals are computed
    zero = analytics.wilson_interval(successes=0, trials=20)
    empty = analytics.wilson_interval(successes=0, trials=0)

    # then the first starts at 0 with a positive upper bound, the second does not exist
    assert zero is not None
    assert zero.low == pytest.approx(0.0, abs=1e-12)
    assert 0.1 < zero.high < 0.2
    assert empty is None


def test_it_matches_the_pooled_two_proportion_z_test():
    # given 120/1000 against 100/1000
    # when the groups are compared
    result = analytics.proportions_compare(
        successes=120, trials=1000, baseline_successes=100, baseline_trials=1000
    )

    # then the p-value is the textbook pooled z-test's, and the lift is 20 % with a Katz interval around it
    pooled = 220 / 2000
    z = (0.12 - 0.10) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert result is not None
    assert result.test == "z"
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert result.absolute_lift == pytest.approx(0.02)
    assert result.relative_lift == pytest.approx(0.20)
    assert result.relative_lift_ci is not None
    assert result.relative_lift_ci.low < 0 < 0.20 < result.relative_lift_ci.high


def test_it_uses_fishers_exact_test_for_small_counts():
    # given 3/10 against 0/10
    # when the groups are compared
    result = analytics.proportions_compare(successes=3, trials=10, baseline_successes=0, baseline_trials=10)

    # then it is Fisher's exact p-value, and there is no relative lift over a zero baseline
    assert result is not None
    assert result.test == "fisher"
    assert result.p_value == pytest.approx(stats.fisher_exact([[3, 7], [0, 10]]).pvalue)
    assert result.relative_lift is None


def test_it_finds_a_clear_winner_probable_and_a_tie_a_coin_flip():
    # given a clearly better treatment, and two identical groups
    # when the posterior probability to beat the baseline is drawn (fixed seed)
    clear = analytics.probability_to_beat(
        successes=150, trials=1000, baseline_successes=100, baseline_trials=1000
    )
    tie = analytics.probability_to_beat(
        successes=100, trials=1000, baseline_successes=100, baseline_trials=1000
    )
    again = analytics.probability_to_beat(
        successes=100, trials=1000, baseline_successes=100, baseline_trials=1000
    )

    # then the first is near certain, the second near one half, and the draw is reproducible
    assert clear is not None
    assert clear > 0.99
    assert tie == pytest.approx(0.5, abs=0.01)
    assert tie == again


def test_it_gives_a_welch_interval_for_a_difference_of_means():
    # given per-shopper revenue [0, 0, 10, 20] against [0, 0, 0, 10]
    a, b = [0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 0.0, 10.0]

    # when the difference is computed from sums
    result = analytics.mean_difference(
        count=4,
        total=sum(a),
        total_squares=sum(x * x for x in a),
        baseline_count=4,
        baseline_total=sum(b),
        baseline_total_squares=sum(x * x for x in b),
    )

    # then it is 5 with the normal interval built from the sample variances
    se = math.sqrt(stats.tvar(a) / 4 + stats.tvar(b) / 4)
    assert result is not None
    assert result.ci is not None
    assert result.difference == pytest.approx(5.0)
    assert result.ci.low == pytest.approx(5.0 - 1.959964 * se, rel=1e-5)
    assert result.ci.high == pytest.approx(5.0 + 1.959964 * se, rel=1e-5)


def test_it_flags_a_60_40_split_on_equal_weights_and_not_a_fair_one():
    # given 6,000 / 4,000 shoppers where the design says 50 / 50, and 5,030 / 4,970
    # when the sample ratio is checked
    skewed = analytics.sample_ratio_check(observed=[6000, 4000], expected_shares=[0.5, 0.5])
    fair = analytics.sample_ratio_check(observed=[5030, 4970], expected_shares=[0.5, 0.5])

    # then only the skewed split is a mismatch, with scipy's chi-square p-value
    assert skewed.mismatch is True
    assert skewed.p_value == pytest.approx(stats.chisquare([6000, 4000]).pvalue)
    assert fair.mismatch is False
    assert fair.p_value is not None
    assert fair.p_value > 0.5


def test_it_flags_shoppers_in_a_group_that_should_be_empty():
    # given a 0 % holdout that nevertheless received shoppers
    # when the sample ratio is checked
    result = analytics.sample_ratio_check(observed=[500, 500, 12], expected_shares=[0.5, 0.5, 0.0])

    # then it is a mismatch
    assert result.mismatch is True
