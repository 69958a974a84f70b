"""tracking's part in a shopper's data rights (GDPR), connected to personalization's signals in ready().

Tracking events and conversions stay for campaign results, re-keyed by the shopper's tombstone id
(``profile.user_id`` once erased), without their free-form properties or the shop's order ids. See
docs/privacy.md.
"""

from __future__ import annotations

from typing import Any

from personalization.models import Profile
from tracking.services import tracking_erase_shopper


def tracking_erase(sender: type[Profile], profile: Profile, user_id: str, **kwargs: Any) -> None:
    tracking_erase_shopper(profile_id=profile.pk, user_id=user_id, erased_id=profile.user_id)
