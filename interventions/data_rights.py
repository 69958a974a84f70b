"""interventions' part in a shopper's data rights (GDPR), connected to personalization's signals in ready().

Interventions stay (campaign results and holdout comparisons need them), re-keyed by the shopper's
tombstone id (``profile.user_id`` once erased); what could identify the shopper goes: the rendered
content (names, addresses), the trigger context (cart, event fields), the session and cart ids, and the
providers' raw answers and errors (which echo addresses and numbers). See docs/privacy.md.
"""

from __future__ import annotations

from typing import Any

from interventions.models import Intervention
from interventions.services import interventions_erase_shopper
from personalization.models import Profile


def interventions_anonymise(sender: type[Profile], profile: Profile, user_id: str, **kwargs: Any) -> None:
    interventions_erase_shopper(profile_id=profile.pk, user_id=user_id, erased_id=profile.user_id)


def interventions_export(sender: type[Profile], profile: Profile, **kwargs: Any) -> dict[str, Any]:
    interventions = (
        Intervention.objects.filter(profile=profile)
        .select_related("campaign", "variant")
        .prefetch_related("deliveries")
        .order_by("created_at")
    )
    return {
        "interventions": [
            {
                "id": str(i.id),
                "campaign": i.campaign.name,
                "variant": i.variant.name if i.variant else None,
                "trigger": i.trigger,
                "status": i.status,
                "channel": i.channel,
                "is_holdout": i.is_holdout,
                "content": i.content,
                "created_at": i.created_at,
                "delivered_at": i.delivered_at,
                "deliveries": [
                    {
                        "channel": d.channel,
                        "status": d.status,
                        "sent_at": d.sent_at,
                        "delivered_at": d.delivered_at,
                    }
                    for d in i.deliveries.all()
                ],
            }
            for i in interventions
        ]
    }
