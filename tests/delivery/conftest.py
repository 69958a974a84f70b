from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Template, Variant
from interventions.models import Delivery, Intervention
from personalization.models import Profile

_counter = itertools.count(1)


@pytest.fixture
def onsite_intervention() -> Callable[..., Intervention]:
    """Create an on-site intervention for a shopper, the way the decision path leaves it: pending, with a
    per-user seq, rendered content and a queued on-site Delivery."""

    def make(
        *,
        user_id: str,
        seq: int,
        expires_in: timedelta | None = timedelta(minutes=30),
        status: str = Intervention.Status.PENDING,
        title: str = "Your cart misses you",
        **content: Any,
    ) -> Intervention:
        n = next(_counter)
        template, _ = Template.objects.get_or_create(
            name="ws-test-modal", defaults={"channel": "onsite", "onsite_kind": "modal"}
        )
        campaign, _ = Campaign.objects.get_or_create(
            name="ws-test-campaign",
            defaults={"trigger": "prediction.cart_abandonment", "status": "active", "channels": ["onsite"]},
        )
        variant, _ = Variant.objects.get_or_create(
            campaign=campaign, name="A", defaults={"onsite_template": template}
        )
        profile, _ = Profile.objects.get_or_create(user_id=user_id)
        intervention = Intervention.objects.create(
            campaign=campaign,
            variant=variant,
            profile=profile,
            user_id=user_id,
            trigger_event_id=f"evt-{n}-{uuid.uuid4()}",
            trigger="prediction.cart_abandonment",
            status=status,
            channel="onsite",
            seq=seq,
            expires_at=timezone.now() + expires_in if expires_in is not None else None,
            content={
                "kind": "modal",
                "title": title,
                "body": "Come back for 10% off",
                "cta_label": "Back to cart",
                "cta_url": "/cart",
                "discount_code": "SAVE10",
                **content,
            },
        )
        Delivery.objects.create(intervention=intervention, channel="onsite")
        return intervention

    return make
