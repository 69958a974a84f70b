"""Channel choice per strategy: fixed, first available (on-site only when online), optimised by history."""

from __future__ import annotations

from typing import Any

from delivery.channel_selection import channel_choose


def choose(
    strategy: str,
    *,
    online: bool,
    usable: tuple[str, ...] = ("onsite", "email", "sms", "push"),
    engagement: dict[str, Any] | None = None,
) -> str | None:
    return channel_choose(
        strategy=strategy,
        channels=["onsite", "email", "sms", "push"],
        usable=lambda channel: channel in usable,
        online=online,
        engagement=engagement or {},
    )


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

    # when the channel is optimised for them off-site, on-site, and without push consent
    off_site = choose("optimized", online=False, engagement=engagement)
    on_site = choose("optimized", online=True, engagement=engagement)
    no_push = choose("optimized", online=False, engagement=engagement, usable=("email", "sms"))

    # then push off-site, on-site when there, and sms (no history beats a poor one) without push
    assert (off_site, on_site, no_push) == ("push", "onsite", "sms")
