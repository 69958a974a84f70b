"""notifications' part in a shopper's data rights (GDPR), connected to personalization's signals in ready().

Provider attempts stay (the providers' success rate and latency), without their error text, which
often quotes the address or number. Callback keys (provider message and event ids) stay: once the
deliveries forget their provider message ids, nothing here links them to the shopper. See docs/privacy.md.
"""

from __future__ import annotations

from typing import Any

from interventions.selectors import delivery_ids_of_profile
from notifications.ledger import provider_attempts_erase
from personalization.models import Profile


def notifications_erase(sender: type[Profile], profile: Profile, **kwargs: Any) -> None:
    provider_attempts_erase(delivery_ids=delivery_ids_of_profile(profile_id=profile.pk))
