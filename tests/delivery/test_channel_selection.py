"""Channel choice per strategy: fixed, first available (on-site only when online), optimised by history
(Thompson sampling per shopper and channel, the population's rate as prior)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from delivery.channel_selection import channel_choose


def choose(
    strategy: str,
    *,
    online: bool,
    usable: tuple[str, ...] = ("onsite", "email", "sms", "push"),
    engagement: dict[str, Any] | None = None,
    rng: np.random.Generator | None = None,
) -> str | None:
    choice = channel_choose(
        strategy=strategy,
        channels=["onsite", "email", "sms", "push"],
        usable=lambda channel: channel in usable,
        online=online,
        engagement=engagement or {},
        rng=rng,
    )
    return choice.channel if choice is not None else None


def test_it_uses_only_the_first_channel_when_fixed():
    # given / when / then: the first channel or nothing
    assert choose("fixed", online=False) == "onsite"
    assert choose("fixed", online=True, usable=("email",)) is None


def test_it_skips_onsite_for_a_shopper_who_is_not_on_the_site():
    # given a shopper who left the site, then one who is on it
    # when the first available channel is chosen
    # then email for the first, on-site for the second; and the next reachable when email is not
    assert choose("first_available", online=False) == "email"
    assert choose("first_available", online=True) == "onsite"
    assert choose("first_available", online=False, usable=("onsite", "sms")) == "sms"


def test_it_picks_the_channel_with_the_best_history_when_optimised():
    # given a shopper who never clicks emails but often clicks pushes
    engagement = {"email": {"delivered": 40, "clicked": 0}, "push": {"delivered": 10, "clicked": 6}}
    rng = np.random.default_rng(7)

    # when the channel is optimised for them 1,000 times off-site, on-site, and without push consent
    off_site = Counter(choose("optimized", online=False, engagement=engagement, rng=rng) for _ in range(1000))
    on_site = {choose("optimized", online=True, engagement=engagement, rng=rng) for _ in range(100)}
    no_push = Counter(
        choose("optimized", online=False, engagement=engagement, usable=("email", "sms"), rng=rng)
        for _ in range(1000)
    )

    # then mostly push off-site, always on-site when there, and mostly sms (no history beats a poor one)
    # without push; the poor channel is still tried now and then
    assert off_site.most_common(1)[0][0] == "push"
    assert off_site["push"] > 900
    assert on_site == {"onsite"}
    assert no_push["sms"] > 700
    assert no_push["email"] > 0
