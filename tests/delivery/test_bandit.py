"""Allocation that learns: Thompson sampling over variants, per-shopper channel choice, propensity logging.

The simulations use shoppers whose true response is known (seeded), so they can check what the policy
converges to; the last tests run the beat task and the decision path against the real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from campaigns.models import Campaign, Variant
from campaigns.selectors import holdout_assign, variant_allocate
from core.redis import redis_sync
from delivery.allocation import (
    ALLOCATION_KEY,
    LearnedCache,
    Posterior,
    allocations_refresh,
    learned_cache,
    thompson_shares,
)
from delivery.channel_selection import channel_choose, channel_posterior
from delivery.models import AllocationSnapshot
from delivery.services import decisions_process_batch
from interventions.models import Intervention
from messaging.models import OutboxMessage
from tests import fixtures as f
from tracking.attribution import conversions_record

# --- Variants: a seeded simulation of a bandit campaign ---------------------------------------------------


def test_it_shifts_traffic_to_the_better_variant_while_control_and_holdout_keep_their_share() -> None:
    # given a campaign with a control and two treatments (weights 1:1:1, a 10% holdout) whose shoppers
    # convert at 5% (control), 4% (A) and 8% (B), and 24 minutes of 1,000 new shoppers each
    campaign = Campaign(pk=41, holdout_percent=Decimal("10"), use_bandit=True)
    control = Variant(pk=1, campaign=campaign, name="control", weight=1, is_control=True)
    a = Variant(pk=2, campaign=campaign, name="A", weight=1)
    b = Variant(pk=3, campaign=campaign, name="B", weight=1)
    true_rate = {"control": 0.05, "A": 0.04, "B": 0.08}
    rng = np.random.default_rng(2026)
    trials = Counter[str]()
    successes = Counter[str]()
    groups = Counter[str]()
    b_share_late: list[float] = []
    propensity_gaps: list[float] = []

    # when every minute the shares are recomputed from the outcomes so far and the shoppers assigned
    for minute in range(24):
        shares = thompson_shares(
            posteriors=[Posterior(trials=trials[v], successes=successes[v]) for v in ("A", "B")], seed=minute
        )
        learned = {a.pk: shares[0], b.pk: shares[1]}
        assigned = Counter[str]()
        logged: dict[str, float] = {}
        for i in range(1000):
            user_id = f"m{minute}-u{i}"
            variant, probability = variant_allocate(
                campaign=campaign, variants=[control, a, b], user_id=user_id, learned=learned
            )
            assert variant is not None
            logged[variant.name] = probability
            if holdout_assign(campaign=campaign, user_id=user_id):
                groups["holdout"] += 1
                continue
            groups["control" if variant.is_control else "treatment"] += 1
            assigned[variant.name] += 1
            trials[variant.name] += 1
            successes[variant.name] += int(rng.random() < true_rate[variant.name])
        treated = assigned["A"] + assigned["B"]
        if minute >= 18:
            b_share_late.append(assigned["B"] / treated)
        # the logged probability is the share the shoppers were actually assigned with
        non_holdout = sum(assigned.values())
        propensity_gaps.append(abs(assigned["B"] / non_holdout - logged.get("B", 0.0)))

    # then the better variant gets most of the treatment traffic by the end, the control keeps a third of
    # the non-holdout traffic and the holdout 10% of all, and the logged propensities match the traffic
    total = sum(groups.values())
    assert min(b_share_late) > 0.8, b_share_late
    assert abs(groups["holdout"] / total - 0.10) < 0.01
    assert abs(groups["control"] / (groups["control"] + groups["treatment"]) - 1 / 3) < 0.015
    assert max(propensity_gaps) < 0.05


def test_it_keeps_a_floor_share_and_splits_evenly_without_data() -> None:
    # given no outcomes at all, then a clear loser
    even = thompson_shares(posteriors=[Posterior(0, 0), Posterior(0, 0)], seed=1)
    skewed = thompson_shares(posteriors=[Posterior(5000, 50), Posterior(5000, 500)], seed=1)

    # then an even split, and the loser keeps its floor so it still learns and is never logged at 0
    assert abs(even[0] - 0.5) < 0.02
    assert abs(sum(even) - 1) < 1e-9
    assert 0.01 <= skewed[0] < 0.02
    assert skewed[1] > 0.98


# --- Channels: a seeded simulation of shoppers with a better channel each -----------------------------


def test_it_converges_to_each_shoppers_better_channel_and_keeps_exploring_at_its_stated_rate() -> None:
    # given 40 shoppers off the site, half of whom click emails (30%) more than pushes (5%), half the
    # reverse, and a population rate of 10% on both channels
    rng = np.random.default_rng(16)
    prior = {"email": 0.1, "push": 0.1}
    shoppers = [
        {"email": 0.30, "push": 0.05} if i % 2 == 0 else {"email": 0.05, "push": 0.30} for i in range(40)
    ]
    engagement: list[dict[str, dict[str, int]]] = [
        {"email": {"delivered": 0, "clicked": 0}, "push": {"delivered": 0, "clicked": 0}} for _ in shoppers
    ]
    late_best = Counter[int]()
    explored = 0
    stated_exploration = 0.0
    decisions = 0

    # when each is sent 300 messages, the channel chosen each time, their clicks counted
    for step in range(300):
        for index, truth in enumerate(shoppers):
            counters = engagement[index]
            means = {
                c: (lambda ab: ab[0] / (ab[0] + ab[1]))(
                    channel_posterior(engagement=counters, channel=c, prior=prior)
                )
                for c in ("email", "push")
            }
            greedy = max(means, key=lambda c: means[c])
            choice = channel_choose(
                strategy="optimized",
                channels=["onsite", "email", "push"],
                usable=lambda c: c != "onsite",
                online=False,
                engagement=counters,
                prior=prior,
                rng=rng,
            )
            assert choice is not None
            p_greedy = choice.probability if choice.channel == greedy else 1 - choice.probability
            if step >= 100:
                decisions += 1
                explored += choice.channel != greedy
                stated_exploration += 1 - p_greedy
            if step >= 250 and choice.channel == max(truth, key=lambda c: truth[c]):
                late_best[index] += 1
            counters[choice.channel]["delivered"] += 1
            counters[choice.channel]["clicked"] += int(rng.random() < truth[choice.channel])

    # then in the last 50 messages every shopper gets their better channel at least 85% of the time; the
    # other channel is still tried, as often as the selector's own probabilities say (within 1 point)
    assert min(late_best[i] for i in range(len(shoppers))) >= 0.85 * 50, late_best
    assert explored > 0
    assert abs(explored / decisions - stated_exploration / decisions) < 0.01, (explored, stated_exploration)


def test_it_says_why_it_chose_a_channel() -> None:
    # given a shopper who clicks pushes and not emails
    engagement = {"email": {"delivered": 30, "clicked": 0}, "push": {"delivered": 20, "clicked": 8}}

    # when the channel is chosen
    choice = channel_choose(
        strategy="optimized",
        channels=["email", "push"],
        usable=lambda c: True,
        online=False,
        engagement=engagement,
        prior={"email": 0.2, "push": 0.1},
        rng=np.random.default_rng(3),
    )

    # then the reason names both channels' expected engagement, best first, and the sampled choice
    assert choice is not None
    assert choice.channel == "push"
    assert choice.reason == f"push 0.30 vs email 0.05, sampled push (p={choice.probability:.2f})"
    assert 0.9 < choice.probability <= 1.0


# --- The beat task and the decision path, against PostgreSQL and Redis -----------------------------------


@pytest.mark.django_db
def test_it_publishes_the_allocation_and_every_decision_logs_its_propensities() -> None:
    # given a bandit campaign (control, A, B; 20% holdout) where 200 shoppers were decided on the weights,
    # and B's shoppers ordered ten times as often as A's
    campaign = f.campaign_live(
        channels=["onsite", "email"],
        channel_strategy="optimized",
        variants=[{"name": "control", "weight": 1, "is_control": True}, "A", "B"],
        use_bandit=True,
        holdout_percent=Decimal("20"),
    )
    variants = {v.name: v for v in Variant.objects.filter(campaign=campaign)}
    users = [f.unique("u") for _ in range(200)]
    decisions_process_batch(
        events=[e for u in users for e in (f.cart_event(user_id=u), f.prediction(user_id=u, score=0.9))],
        campaigns=f.active_set(),
        after_commit=False,
    )
    treated = Intervention.objects.filter(campaign=campaign, is_holdout=False, variant__name__in=["A", "B"])
    buyers = [
        intervention.user_id
        for index, intervention in enumerate(treated.order_by("user_id"))
        if (index % 2 == 0 if intervention.variant_id == variants["B"].pk else index % 20 == 0)
    ]
    conversions_record(orders=[f.order(user_id, "10.00") for user_id in buyers])

    # when the beat task runs and the consumers' cache picks it up
    snapshots = allocations_refresh(seed=5)
    other_process = LearnedCache()
    learned = other_process.refresh()
    learned_cache.refresh()

    # then Redis holds one key for the campaign, a snapshot records it, and another process sees the same
    # shares: B far ahead of A, the control untouched
    stored = json.loads(redis_sync().get(ALLOCATION_KEY.format(campaign_id=campaign.pk)) or "{}")
    assert stored["goal"] == "conversion"
    (snapshot,) = [s for s in snapshots if s.campaign_id == campaign.pk]
    assert AllocationSnapshot.objects.filter(pk=snapshot.pk).exists()
    shares = learned.shares[campaign.pk]
    assert set(shares) == {variants["A"].pk, variants["B"].pk}
    assert shares[variants["B"].pk] > 0.95
    assert snapshot.posteriors[str(variants["B"].pk)]["successes"] > 0

    # and when the next shoppers are decided
    later = [f.unique("u") for _ in range(150)]
    decisions_process_batch(
        events=[e for u in later for e in (f.cart_event(user_id=u), f.prediction(user_id=u, score=0.9))],
        campaigns=f.active_set(),
        after_commit=False,
    )

    # then they go to the control (its third) or to B, never (or rarely) to A, and each decision logs
    # the probability of its variant, of the holdout and of its channel, with the reason, also on the event
    rows = list(Intervention.objects.filter(campaign=campaign, user_id__in=later).select_related("variant"))
    by_variant = Counter(r.variant.name for r in rows if not r.is_holdout and r.variant is not None)
    assert by_variant["B"] > 3 * by_variant["A"]
    assert by_variant["control"] > 0
    sent = [r for r in rows if r.status == Intervention.Status.PENDING]
    assert sent
    for row in sent:
        assert row.variant is not None
        assert row.propensity["holdout"] == 0.2
        expected = 1 / 3 if row.variant.name == "control" else shares[row.variant.pk] * 2 / 3
        assert abs(row.propensity["variant"] - expected) < 1e-4
        assert row.propensity["channel"] == 1.0
        assert row.propensity["channel_reason"] == "only email usable"
    held = [r for r in rows if r.is_holdout]
    assert held
    assert all(r.propensity["holdout"] == 0.2 and "channel" not in r.propensity for r in held)
    created = [
        m.payload
        for m in OutboxMessage.objects.filter(topic__endswith="intervention-events")
        if m.payload["type"] == "intervention.created" and m.payload["user_id"] in later
    ]
    assert len(created) == len(sent)
    assert all(p["propensity"]["channel_reason"] == "only email usable" for p in created)


@pytest.mark.django_db
def test_it_shows_the_current_allocation_and_its_history_in_the_admin(admin_client: Any) -> None:
    # given a bandit campaign whose allocation was computed twice, B's outcomes better the second time
    campaign = f.campaign_live(channels=["email"], variants=("A", "B"), use_bandit=True)
    a, b = (campaign.variants.get(name=name) for name in ("A", "B"))
    first = AllocationSnapshot.objects.create(
        campaign=campaign,
        computed_at=timezone.now() - timedelta(minutes=1),
        goal="conversion",
        shares={str(a.pk): 0.5, str(b.pk): 0.5},
        posteriors={},
    )
    latest = AllocationSnapshot.objects.create(
        campaign=campaign,
        computed_at=timezone.now(),
        goal="conversion",
        shares={str(a.pk): 0.1, str(b.pk): 0.9},
        posteriors={str(b.pk): {"alpha": 10.0, "beta": 91.0, "trials": 100, "successes": 9}},
    )

    # when an operator opens the campaign's allocations, then the latest one
    listing = admin_client.get(
        "/admin/delivery/allocationsnapshot/", {"campaign__id__exact": campaign.pk}
    ).content.decode()
    detail = admin_client.get(f"/admin/delivery/allocationsnapshot/{latest.pk}/change/").content.decode()

    # then the newest allocation comes first, best variant first, with the history below it; the
    # detail shows the posterior each share came from
    assert listing.index("B 90% · A 10%") < listing.index("A 50% · B 50%")
    assert f"/admin/delivery/allocationsnapshot/{first.pk}/change/" in listing
    assert "B: 9/100, Beta(10, 91)" in detail
