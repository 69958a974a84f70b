from __future__ import annotations

from collections import Counter
from decimal import Decimal

from campaigns.models import Campaign, Variant
from campaigns.selectors import holdout_assign, variant_assign


def _variants(campaign: Campaign, weights: dict[str, int]) -> list[Variant]:
    return [
        Variant(pk=index + 1, campaign=campaign, name=name, weight=weight)
        for index, (name, weight) in enumerate(weights.items())
    ]


def _name(campaign: Campaign, variants: list[Variant], user_id: str) -> str:
    variant = variant_assign(campaign=campaign, variants=variants, user_id=user_id)
    assert variant is not None
    return variant.name


def test_it_assigns_the_same_variant_to_a_shopper_every_time_whatever_the_order() -> None:
    campaign = Campaign(pk=7, holdout_percent=Decimal("10"))
    variants = _variants(campaign, {"A": 1, "B": 1, "C": 2})

    first = [variant_assign(campaign=campaign, variants=variants, user_id=f"u-{i}") for i in range(200)]
    again = [variant_assign(campaign=campaign, variants=variants[::-1], user_id=f"u-{i}") for i in range(200)]

    assert [v.name for v in first if v] == [v.name for v in again if v]
    assert [holdout_assign(campaign=campaign, user_id=f"u-{i}") for i in range(200)] == [
        holdout_assign(campaign=campaign, user_id=f"u-{i}") for i in range(200)
    ]


def test_it_splits_traffic_by_weight_within_tolerance() -> None:
    # given weights 1:1:2 and 20,000 shoppers
    campaign = Campaign(pk=11)
    variants = _variants(campaign, {"A": 1, "B": 1, "C": 2, "Off": 0})

    # when each is assigned
    counts = Counter(_name(campaign, variants, f"user-{i}") for i in range(20_000))

    # then shares follow the weights (±1.5 points), and a zero weight gets nobody
    assert abs(counts["A"] / 20_000 - 0.25) < 0.015
    assert abs(counts["B"] / 20_000 - 0.25) < 0.015
    assert abs(counts["C"] / 20_000 - 0.50) < 0.015
    assert counts["Off"] == 0


def test_it_holds_out_about_the_configured_share_independently_of_the_variant() -> None:
    campaign = Campaign(pk=3, holdout_percent=Decimal("10"))
    variants = _variants(campaign, {"A": 1, "B": 1})
    users = [f"user-{i}" for i in range(20_000)]

    held = [u for u in users if holdout_assign(campaign=campaign, user_id=u)]

    assert abs(len(held) / len(users) - 0.10) < 0.01
    # the holdout is not skewed towards one variant (different salt)
    in_a = len([u for u in held if _name(campaign, variants, u) == "A"])
    assert abs(in_a / len(held) - 0.5) < 0.05
    assert not any(holdout_assign(campaign=Campaign(pk=3, holdout_percent=0), user_id=u) for u in users[:500])


def test_it_assigns_differently_across_campaigns_and_returns_none_without_weight() -> None:
    variants_1 = _variants(Campaign(pk=1), {"A": 1, "B": 1})
    variants_2 = _variants(Campaign(pk=2), {"A": 1, "B": 1})
    names_1 = [_name(Campaign(pk=1), variants_1, f"u{i}") for i in range(100)]
    names_2 = [_name(Campaign(pk=2), variants_2, f"u{i}") for i in range(100)]

    assert names_1 != names_2
    assert (
        variant_assign(campaign=Campaign(pk=1), variants=_variants(Campaign(pk=1), {"A": 0}), user_id="u")
        is None
    )
