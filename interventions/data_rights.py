"""campaigns' part in a shopper's data rights (GDPR), connected to personalization's signals in ready().

Interventions stay (campaign results and holdout comparisons need them), keyed by the pseudonymous
``user_id``; what could identify the shopper goes: the rendered content (names, addresses), the trigger
context (cart, event fields) and the providers' raw answers (which echo addresses and numbers).
"""

from __future__ import annotations

from typing import Any

from interventions.models import Delivery, Intervention
from personalization.models import Profile


def interventions_anonymise(sender: type[Profile], profile: Profile, **kwargs: Any) -> None:
    interventions = Intervention.objects.filter(profile=profile)
    Delivery.objects.filter(intervention__in=interventions).update(provider_response={}, last_error="")
    interventions.update(content={}, context={}, session_id="", cart_id="")


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
