"""The statistics behind campaign reports: intervals, tests and posteriors, on counts already aggregated.

Every function takes counts (or sums) and returns plain numbers; nothing here touches the database.
Distributions come from scipy and numpy rather than being written by hand, so the numbers match what an
analyst gets from the same data in a notebook. The methods, and why each was chosen, are in
docs/analytics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# numpy and scipy (most of 80 MiB) are imported by the functions that use them, not with the module: the
# URLconf imports this module, and a process that only serves WebSocket traffic never computes a report.

CONFIDENCE = 0.95
# Below this expected count in any cell of the 2x2 table the normal approximation is poor: use Fisher.
SMALL_EXPECTED_COUNT = 5
SRM_ALPHA = 0.001
POSTERIOR_DRAWS = 100_000
# A fixed seed makes "probability to beat control" the same number on every page load and export.
POSTERIOR_SEED = 20261128


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class ProportionComparison:
    """Treatment against a baseline: lift, its interval, and a two-sided p-value."""

    absolute_lift: float
    relative_lift: float | None  # None when the baseline rate is zero
    relative_lift_ci: Interval | None  # None when either group has no success (the log ratio is undefined)
    p_value: float
    test: str  # "z" (two-proportion z-test) or "fisher" (exact, for small counts)


@dataclass(frozen=True)
class MeanDifference:
    difference: float
    ci: Interval | None  # None when a group has fewer than two units


@dataclass(frozen=True)
class SampleRatioCheck:
    chi2: float | None
    p_value: float | None
    mismatch: bool
    reason: str  # why it is (or is not) flagged, in words a marketer can read


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(*, successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval | None:
    """Wilson score interval for a proportion; ``None`` with no trials.

    Wilson rather than the textbook normal interval because it stays inside [0, 1] and keeps its coverage
    for rates near 0 — conversion rates of a few percent on a few hundred shoppers are the common case.
    """
    if trials <= 0:
        return None
    from scipy import stats

    ci = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(low=float(ci.low), high=float(ci.high))


def proportions_compare(
    *,
    successes: int,
    trials: int,
    baseline_successes: int,
    baseline_trials: int,
    confidence: float = CONFIDENCE,
) -> ProportionComparison | None:
    """Compare a treatment rate with a baseline rate; ``None`` when either group is empty.

    The p-value is the two-proportion z-test (pooled), computed as the equivalent chi-square test on the
    2x2 table without continuity correction; when an expected cell count is below 5 it is Fisher's exact
    test instead. The relative lift's interval is the log risk-ratio (Katz) interval, which is asymmetric
    like the ratio itself.
    """
    if trials <= 0 or baseline_trials <= 0:
        return None
    import numpy as np
    from scipy import stats

    rate = successes / trials
    baseline_rate = baseline_successes / baseline_trials
    table = np.array(
        [[successes, trials - successes], [baseline_successes, baseline_trials - baseline_successes]]
    )
    if successes + baseline_successes == 0 or successes + baseline_successes == trials + baseline_trials:
        # Every unit in one column: the groups cannot differ on this data.
        p_value, test = 1.0, "z"
    else:
        expected = stats.contingency.expected_freq(table)
        if float(expected.min()) < SMALL_EXPECTED_COUNT:
            p_value, test = float(stats.fisher_exact(table).pvalue), "fisher"
        else:
            result = stats.chi2_contingency(table, correction=False)
            p_value, test = float(result.pvalue), "z"

    relative: float | None = None
    relative_ci: Interval | None = None
    if baseline_rate > 0:
        relative = rate / baseline_rate - 1
        if successes > 0:
            log_se = math.sqrt(1 / successes - 1 / trials + 1 / baseline_successes - 1 / baseline_trials)
            log_ratio = math.log(rate / baseline_rate)
            z = _z(confidence)
            relative_ci = Interval(
                low=math.exp(log_ratio - z * log_se) - 1, high=math.exp(log_ratio + z * log_se) - 1
            )
    return ProportionComparison(
        absolute_lift=rate - baseline_rate,
        relative_lift=relative,
        relative_lift_ci=relative_ci,
        p_value=p_value,
        test=test,
    )


def probability_to_beat(
    *,
    successes: int,
    trials: int,
    baseline_successes: int,
    baseline_trials: int,
    draws: int = POSTERIOR_DRAWS,
    seed: int = POSTERIOR_SEED,
) -> float | None:
    """P(treatment rate > baseline rate) under independent Beta(1, 1) priors, by Monte Carlo."""
    if trials <= 0 or baseline_trials <= 0:
        return None
    import numpy as np

    rng = np.random.default_rng(seed)
    treatment = rng.beta(1 + successes, 1 + trials - successes, size=draws)
    baseline = rng.beta(1 + baseline_successes, 1 + baseline_trials - baseline_successes, size=draws)
    return float(np.mean(treatment > baseline))


def mean_difference(
    *,
    count: int,
    total: float,
    total_squares: float,
    baseline_count: int,
    baseline_total: float,
    baseline_total_squares: float,
    confidence: float = CONFIDENCE,
) -> MeanDifference | None:
    """Difference of two means (e.g. revenue per exposed shopper) with a Welch normal interval.

    Takes sums rather than samples so the database can aggregate them: most exposed shoppers spend
    nothing, and only the converters' sums are ever read. Revenue is heavily skewed, but the groups
    compared are large enough for the central limit theorem; the bootstrap would need every row.
    """
    if count <= 0 or baseline_count <= 0:
        return None
    mean = total / count
    baseline_mean = baseline_total / baseline_count
    difference = mean - baseline_mean
    if count < 2 or baseline_count < 2:
        return MeanDifference(difference=difference, ci=None)
    variance = max(total_squares - count * mean * mean, 0.0) / (count - 1)
    baseline_variance = max(baseline_total_squares - baseline_count * baseline_mean**2, 0.0) / (
        baseline_count - 1
    )
    se = math.sqrt(variance / count + baseline_variance / baseline_count)
    z = _z(confidence)
    return MeanDifference(
        difference=difference, ci=Interval(low=difference - z * se, high=difference + z * se)
    )


def sample_ratio_check(
    *, observed: Sequence[int], expected_shares: Sequence[float], alpha: float = SRM_ALPHA
) -> SampleRatioCheck:
    """Chi-square goodness of fit of the observed group sizes against the shares the design promised.

    A mismatch (p < 0.001, the usual threshold for this check) means assignment or logging is broken —
    the lift figures should not be trusted until it is explained.
    """
    total = sum(observed)
    if len(observed) != len(expected_shares):
        raise ValueError("observed and expected_shares differ in length")
    if total == 0 or len(observed) < 2:
        return SampleRatioCheck(
            chi2=None, p_value=None, mismatch=False, reason="Not enough groups or exposures."
        )
    share_sum = sum(expected_shares)
    if share_sum <= 0:
        return SampleRatioCheck(chi2=None, p_value=None, mismatch=False, reason="No expected allocation.")
    shares = [share / share_sum for share in expected_shares]
    if any(share == 0 and count > 0 for share, count in zip(shares, observed, strict=True)):
        return SampleRatioCheck(
            chi2=None, p_value=None, mismatch=True, reason="A group with no expected share received shoppers."
        )
    pairs = [(count, share * total) for count, share in zip(observed, shares, strict=True) if share > 0]
    if len(pairs) < 2:
        return SampleRatioCheck(chi2=None, p_value=None, mismatch=False, reason="Only one group is expected.")
    from scipy import stats

    result = stats.chisquare([count for count, _ in pairs], [expected for _, expected in pairs])
    p_value = float(result.pvalue)
    mismatch = p_value < alpha
    reason = (
        f"Observed group sizes differ from the configured split (p = {p_value:.2g} < {alpha})."
        if mismatch
        else "Observed group sizes match the configured split."
    )
    return SampleRatioCheck(chi2=float(result.statistic), p_value=p_value, mismatch=mismatch, reason=reason)


# --- Always-valid inference: looking every day without fooling oneself -------------------------------


@dataclass(frozen=True)
class SequentialComparison:
    """A difference of two conversion rates with an always-valid interval and p-value.

    "Always valid": the probability that the interval ever misses the true difference, over every look
    one cares to take (daily, hourly, on each page load), is at most 1 - confidence; likewise the p-value
    is below alpha at some look with probability at most alpha when the rates are equal. A fixed-horizon
    p-value looked at daily crosses 0.05 by chance far more often than 5 % of the time.
    """

    difference: float
    interval: Interval | None  # None while either group has no variance (no conversion, or all converted)
    p_value: float
    mixing_sd: float


def sequential_difference(
    *,
    successes: int,
    trials: int,
    baseline_successes: int,
    baseline_trials: int,
    mixing_sd: float,
    confidence: float = CONFIDENCE,
) -> SequentialComparison | None:
    """The mixture sequential probability ratio test (mSPRT) for a difference of two proportions.

    Johari, Koomen, Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B tests"
    (Operations Research 70(3), 2022), with the normal approximation they use for large samples: the
    estimated difference θ̂ has variance V = p̂(1 - p̂)/n + p̂₀(1 - p̂₀)/n₀, and mixing the likelihood ratio
    over alternatives θ ~ N(0, τ²) gives

        Λ = sqrt(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²)))

    a nonnegative supermartingale under the null, so P(Λ ever ≥ 1/a) ≤ a (Ville's inequality). The
    p-value is min(1, 1/Λ); the interval is every θ₀ the same test would not reject:

        θ̂ ± sqrt(V (V + τ²) / τ² · (2 log(1/a) - log(V / (V + τ²))))

    τ (``mixing_sd``) is where the test is most powerful: the campaign's minimum detectable effect.
    """
    if trials <= 0 or baseline_trials <= 0 or mixing_sd <= 0:
        return None
    rate = successes / trials
    baseline_rate = baseline_successes / baseline_trials
    difference = rate - baseline_rate
    variance = rate * (1 - rate) / trials + baseline_rate * (1 - baseline_rate) / baseline_trials
    if variance <= 0:
        return SequentialComparison(difference=difference, interval=None, p_value=1.0, mixing_sd=mixing_sd)
    tau2 = mixing_sd * mixing_sd
    alpha = 1 - confidence
    log_shrink = math.log(variance / (variance + tau2))
    log_ratio = 0.5 * log_shrink + tau2 * difference * difference / (2 * variance * (variance + tau2))
    half_width = _sequential_half_width(variance=variance, tau2=tau2, alpha=alpha)
    return SequentialComparison(
        difference=difference,
        interval=Interval(low=difference - half_width, high=difference + half_width),
        p_value=min(1.0, math.exp(-log_ratio)),
        mixing_sd=mixing_sd,
    )


def fixed_half_width(*, variance: float, confidence: float = CONFIDENCE) -> float:
    """Half the fixed-horizon (Wald) interval of an estimate with this variance: valid at one look only."""
    return _z(confidence) * math.sqrt(variance)


def _sequential_half_width(*, variance: float, tau2: float, alpha: float) -> float:
    return math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) - math.log(variance / (variance + tau2)))
    )


def power_reached(
    *, baseline_rate: float, trials: int, baseline_trials: int, effect: float, confidence: float = CONFIDENCE
) -> float | None:
    """The power a fixed-horizon two-sided z-test has, at these sample sizes, to detect ``effect`` (an
    absolute difference of rates) over ``baseline_rate``: how close the experiment is to telling."""
    if trials <= 0 or baseline_trials <= 0 or effect <= 0:
        return None
    from scipy import stats

    treated_rate = min(baseline_rate + effect, 1.0)
    se = math.sqrt(
        treated_rate * (1 - treated_rate) / trials + baseline_rate * (1 - baseline_rate) / baseline_trials
    )
    if se == 0:
        return 1.0
    z = _z(confidence)
    return float(stats.norm.cdf(effect / se - z) + stats.norm.cdf(-effect / se - z))


def growth_to_resolve(
    *,
    baseline_rate: float,
    trials: int,
    baseline_trials: int,
    effect: float,
    confidence: float = CONFIDENCE,
) -> float | None:
    """By how many times the samples must grow (≥ 1) before the always-valid interval is narrower than
    ``effect`` on each side: then a true difference of ``effect`` is, at its expected estimate, declared.

    Both groups grow at today's ratio, with the variance of the baseline rate (and of the rate ``effect``
    above it) per shopper. ``None`` when nothing is known yet.
    """
    if trials <= 0 or baseline_trials <= 0 or effect <= 0 or not 0 < baseline_rate < 1:
        return None
    treated_rate = min(baseline_rate + effect, 1.0)
    variance = (
        treated_rate * (1 - treated_rate) / trials + baseline_rate * (1 - baseline_rate) / baseline_trials
    )
    tau2 = effect * effect
    alpha = 1 - confidence

    def half_width(growth: float) -> float:
        return _sequential_half_width(variance=variance / growth, tau2=tau2, alpha=alpha)

    if half_width(1.0) <= effect:
        return 1.0
    low, high = 1.0, 2.0
    while half_width(high) > effect:
        low, high = high, high * 2
        if high > 1e9:
            return None
    for _ in range(60):  # bisection to well below a day's precision
        middle = (low + high) / 2
        low, high = (low, middle) if half_width(middle) <= effect else (middle, high)
    return high


def mean_interval(
    *, count: int, total: float, total_squares: float, confidence: float = CONFIDENCE
) -> Interval | None:
    """Normal interval of a mean (e.g. revenue per shopper) from its sums; ``None`` below two units."""
    if count < 2:
        return None
    mean = total / count
    variance = max(total_squares - count * mean * mean, 0.0) / (count - 1)
    half = _z(confidence) * math.sqrt(variance / count)
    return Interval(low=mean - half, high=mean + half)
