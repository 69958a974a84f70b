"""Offline evaluation: what a changed policy would have earned, from the logged decisions and outcomes.

Every decision logs the probabilities it was made with (``Intervention.propensity``: the holdout's, the
variant's and the channel's), so a different policy can be evaluated on the same decisions without
running it. A policy here is the logged one with changes (``--change`` of ``evaluate_policy``):

* ``threshold=<x>`` — contact only when the trigger's score is at least ``x``, never below (the holdout
  logged what not contacting earns);
* ``holdout=<percent>`` — hold out that share instead;
* ``variant=<id>`` — always that variant (among the contacted);
* ``channel=<name>`` — always that channel (where one was chosen).

The policy factorises like the logged one (holdout, then variant, then channel), so a logged decision's
importance weight is the product of π/μ over the three parts; the parts left as logged contribute 1.

Two estimates of the reward per decision (the campaign's goal: an attributed order, or a click):

* inverse propensity (IPS): ``mean(w · r)``; unbiased when the logged probabilities are right and
  every action the policy takes was possible, but noisy when weights are large;
* doubly robust (DR): ``mean(q̂(π, x) + w · (r - q̂(a, x)))`` with q̂ the mean reward of each action
  (holdout or contacted, variant, channel) per score decile, falling back to the action's overall mean:
  unbiased if either the propensities or q̂ are right, and usually much less noisy.

Intervals are percentile bootstraps over decisions, q̂ fitted again on each resample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import ApplicationError

CHANGES = ("threshold", "holdout", "variant", "channel")
BOOTSTRAP = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class LoggedDecision:
    score: float | None
    is_holdout: bool
    variant_id: int | None
    channel: str  # "" when nothing was sent
    p_holdout: float  # the logged holdout probability
    p_variant: float  # of the logged variant, among the non-holdout traffic
    p_channel: float  # of the logged channel (1 when none or only one was possible)
    reward: float


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Evaluation:
    decisions: int
    logged: float  # the logged policy's mean reward
    ips: Estimate
    dr: Estimate
    effective_sample_size: float  # (Σw)² / Σw²: how many decisions the estimate really rests on


def policy_changes_parse(changes: Sequence[str]) -> dict[str, Any]:
    """``["threshold=0.8", "channel=email"]`` → ``{"threshold": 0.8, "channel": "email"}``."""
    parsed: dict[str, Any] = {}
    for change in changes:
        name, _, value = change.partition("=")
        name = name.strip()
        if name not in CHANGES or not value.strip():
            raise ApplicationError(
                f"Unknown change {change!r}: use {', '.join(f'{c}=…' for c in CHANGES)}.",
                code="invalid_change",
            )
        text = value.strip()
        try:
            if name == "holdout":
                parsed[name] = float(text) / 100
            elif name == "threshold":
                parsed[name] = float(text)
            elif name == "variant":
                parsed[name] = int(text)
            else:
                parsed[name] = text
        except ValueError as exc:
            raise ApplicationError(f"Invalid value in {change!r}.", code="invalid_change") from exc
    return parsed


def _p_holdout(change: dict[str, Any], d: LoggedDecision) -> float:
    """The changed policy's holdout probability for this decision's context."""
    if "threshold" in change:
        return 1.0 if d.score is None or d.score < change["threshold"] else 0.0
    return float(change.get("holdout", d.p_holdout))


def _weight(change: dict[str, Any], d: LoggedDecision) -> float:
    p_holdout = _p_holdout(change, d)
    if d.is_holdout:
        return p_holdout / d.p_holdout if d.p_holdout > 0 else 0.0
    weight = (1 - p_holdout) / (1 - d.p_holdout) if d.p_holdout < 1 else 0.0
    if "variant" in change:
        weight *= (d.variant_id == change["variant"]) / d.p_variant if d.p_variant > 0 else 0.0
    if "channel" in change and d.channel:
        weight *= (d.channel == change["channel"]) / d.p_channel if d.p_channel > 0 else 0.0
    return weight


def _bucket(score: float | None) -> int:
    """0 for no score, 1..10 for the score's decile."""
    return 0 if score is None else 1 + min(max(int(score * 10), 0), 9)


BUCKETS = 11


def _action(d: LoggedDecision) -> tuple[Any, ...]:
    return ("holdout",) if d.is_holdout else (d.variant_id, d.channel)


def policy_evaluate(
    *,
    decisions: Sequence[LoggedDecision],
    change: dict[str, Any],
    bootstrap: int = BOOTSTRAP,
    seed: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Evaluation:
    """IPS and DR estimates of the changed policy's reward per decision, with bootstrap intervals (q̂
    fitted again on every resample, so its own noise is in the interval); ``progress`` is called with the
    number of resamples done."""
    import numpy as np

    if not decisions:
        raise ApplicationError("No logged decisions to evaluate.", code="no_decisions")
    holdout = ("holdout",)
    actions = [holdout, *sorted({_action(d) for d in decisions} - {holdout}, key=repr)]
    index_of = {a: i for i, a in enumerate(actions)}
    action = np.array([index_of[_action(d)] for d in decisions])
    bucket = np.array([_bucket(d.score) for d in decisions])
    cell = action * BUCKETS + bucket
    rewards = np.array([d.reward for d in decisions])
    weights = np.array([_weight(change, d) for d in decisions])
    p_holdout = np.array([_p_holdout(change, d) for d in decisions])
    # The changed policy's mix of contacted actions: the logged one's frequencies (its variant and
    # channel mix), restricted to the changed variant and channel.
    mix = np.bincount(action, minlength=len(actions)).astype(float)
    mix[0] = 0.0
    for i, a in enumerate(actions[1:], start=1):
        if ("variant" in change and a[0] != change["variant"]) or (
            "channel" in change and a[1] and a[1] != change["channel"]
        ):
            mix[i] = 0.0
    mix = mix / mix.sum() if mix.sum() else mix

    def dr_terms(sample: Any) -> Any:
        """Per decision of ``sample``: q̂(π, x) + w · (r - q̂(a, x)), q̂ fitted on ``sample``: the mean
        reward per (action, score decile), else per action, else overall."""
        size = len(actions) * BUCKETS
        sums = np.bincount(cell[sample], weights=rewards[sample], minlength=size)
        counts = np.bincount(cell[sample], minlength=size)
        action_sums = np.bincount(action[sample], weights=rewards[sample], minlength=len(actions))
        action_counts = np.bincount(action[sample], minlength=len(actions))
        overall = rewards[sample].mean()
        per_action = np.where(action_counts > 0, action_sums / np.maximum(action_counts, 1), overall)
        q = np.where(counts > 0, sums / np.maximum(counts, 1), np.repeat(per_action, BUCKETS))
        q = q.reshape(len(actions), BUCKETS)
        b = bucket[sample]
        policy_q = p_holdout[sample] * q[0, b] + (1 - p_holdout[sample]) * (mix @ q[:, b])
        return policy_q + weights[sample] * (rewards[sample] - q[action[sample], b])

    everyone = np.arange(len(decisions))
    ips_terms = weights * rewards
    rng = np.random.default_rng(seed)
    ips_samples = np.empty(bootstrap)
    dr_samples = np.empty(bootstrap)
    for i in range(bootstrap):
        sample = rng.integers(0, len(decisions), size=len(decisions))
        ips_samples[i] = ips_terms[sample].mean()
        dr_samples[i] = dr_terms(sample).mean()
        if progress is not None:
            progress(i + 1)
    tail = (1 - CONFIDENCE) / 2 * 100

    def estimate(value: float, samples: Any) -> Estimate:
        low, high = np.percentile(samples, [tail, 100 - tail])
        return Estimate(value=value, low=float(low), high=float(high))

    square_sum = float((weights**2).sum())
    return Evaluation(
        decisions=len(decisions),
        logged=float(rewards.mean()),
        ips=estimate(float(ips_terms.mean()), ips_samples),
        dr=estimate(float(dr_terms(everyone).mean()), dr_samples),
        effective_sample_size=float(weights.sum() ** 2 / square_sum) if square_sum else 0.0,
    )
