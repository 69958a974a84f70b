"""Offline evaluation of a changed policy on logged decisions: seeded simulations with a known answer, and
the ``evaluate_policy`` command on decisions the decision path logged."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from delivery.evaluation import LoggedDecision, policy_changes_parse, policy_evaluate
from delivery.services import decisions_process_batch
from interventions.models import Intervention
from tests import fixtures as f
from tracking.attribution import conversions_record

# Shoppers of a campaign with a 20% holdout, variants 1 and 2 and channels email and push drawn 50/50.
# Their true chance to order: 2% + 5%·score when held out; else 5% (variant 1) or 10% (variant 2), +2%
# by email, + 10%·score.
HOLDOUT = 0.2


def simulate(rng: np.random.Generator, count: int) -> list[LoggedDecision]:
    decisions = []
    for _ in range(count):
        score = float(rng.random())
        if rng.random() < HOLDOUT:
            reward = rng.random() < 0.02 + 0.05 * score
            decisions.append(
                LoggedDecision(score, True, 1 + int(rng.random() < 0.5), "", HOLDOUT, 0.5, 1.0, float(reward))
            )
            continue
        variant = 1 + int(rng.random() < 0.5)
        channel = "email" if rng.random() < 0.5 else "push"
        rate = (0.05 if variant == 1 else 0.10) + (0.02 if channel == "email" else 0.0) + 0.1 * score
        decisions.append(
            LoggedDecision(score, False, variant, channel, HOLDOUT, 0.5, 0.5, float(rng.random() < rate))
        )
    return decisions


def test_it_recovers_a_known_policy_value_inside_its_interval() -> None:
    # given a changed policy: contact only from a score of 0.5, always with variant 2 — worth, in truth,
    # ½·(2% + 5%·0.25) + ½·(10% + 1% + 10%·0.75) = 10.875% per decision
    change = policy_changes_parse(["threshold=0.5", "variant=2"])
    truth = 0.5 * (0.02 + 0.05 * 0.25) + 0.5 * (0.10 + 0.01 + 0.1 * 0.75)
    covered = {"ips": 0, "dr": 0}
    errors = {"ips": 0.0, "dr": 0.0}
    replications = 100

    # when it is evaluated on 100 seeded logs of 2,000 decisions each
    for seed in range(replications):
        result = policy_evaluate(
            decisions=simulate(np.random.default_rng(seed), 2000), change=change, bootstrap=200, seed=seed
        )
        for name, estimate in (("ips", result.ips), ("dr", result.dr)):
            covered[name] += estimate.low <= truth <= estimate.high
            errors[name] += estimate.value - truth

    # then both 95% intervals hold the true value in (about) 95% of the logs, and the estimates are
    # unbiased: their mean error is well inside one standard error of a single estimate (≈ 1.2 points)
    assert covered["ips"] >= 0.92 * replications, covered
    assert covered["dr"] >= 0.92 * replications, covered
    assert abs(errors["ips"] / replications) < 0.004
    assert abs(errors["dr"] / replications) < 0.004


def test_it_refuses_an_unknown_change() -> None:
    with pytest.raises(Exception, match="Unknown change"):
        policy_changes_parse(["budget=3"])


@pytest.mark.django_db
def test_it_evaluates_a_campaigns_logged_decisions_from_the_command() -> None:
    # given a campaign with a 30% holdout whose 120 decided shoppers logged their propensities, and
    # orders from a third of the contacted ones
    campaign = f.campaign_live(channels=["email"], variants=("A", "B"), holdout_percent=Decimal("30"))
    users = [f.unique("u") for _ in range(120)]
    decisions_process_batch(
        events=[e for u in users for e in (f.cart_event(user_id=u), f.prediction(user_id=u, score=0.9))],
        campaigns=f.active_set(),
        after_commit=False,
    )
    contacted = list(Intervention.objects.filter(campaign=campaign, is_holdout=False).order_by("user_id"))
    conversions_record(orders=[f.order(i.user_id, "10.00") for i in contacted[::3]])

    # when a policy without holdout is evaluated
    out, err = StringIO(), StringIO()
    call_command(
        "evaluate_policy",
        campaign=campaign.pk,
        change=["holdout=0"],
        seed=1,
        bootstrap=300,
        stdout=out,
        stderr=err,
    )

    # then it prints both estimates with intervals (IPS exactly as defined), and a progress bar ran to the end
    text = out.getvalue()
    assert "120 decisions" in text
    ips_line = next(line for line in text.splitlines() if line.startswith("IPS:"))
    value = float(ips_line.split()[1])
    # IPS: each contacted shopper's order weighs 1 / (1 - 30%), each held-out one 0
    assert value == pytest.approx(len(contacted[::3]) / 0.7 / 120, abs=1e-4)
    assert "doubly robust:" in text
    assert "300/300" in err.getvalue()
    with pytest.raises(CommandError, match="Unknown change"):
        call_command("evaluate_policy", campaign=campaign.pk, change=["budget=1"], stdout=out, stderr=err)
