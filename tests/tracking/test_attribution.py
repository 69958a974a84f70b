"""Last-touch attribution of orders: window, holdout, once per order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from interventions.models import Intervention
from messaging.models import OutboxMessage
from personalization.models import Profile
from tests import fixtures as f
from tracking.attribution import OrderPlaced, conversions_record

pytestmark = pytest.mark.django_db


def touch(*, campaign, user_id: str, minutes_ago: float, **fields) -> Intervention:
    profile, _ = Profile.objects.get_or_create(user_id=user_id)
    intervention = Intervention.objects.create(
        campaign=campaign,
        profile=profile,
        user_id=user_id,
        trigger_event_id=f.unique("evt"),
        trigger=campaign.trigger,
        channel="email",
        status=fields.pop("status", Intervention.Status.DELIVERED),
        **fields,
    )
    Intervention.objects.filter(pk=intervention.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return intervention


def order(user_id: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=f.unique("o"),
        user_id=user_id,
        revenue=Decimal("42.00"),
        currency="EUR",
        occurred_at=timezone.now(),
    )


def test_it_attributes_to_the_last_touch_inside_the_window_only():
    # given a one-hour window, an old touch (2 h ago) and a recent one (10 min ago), and a second
    # shopper whose only touch is outside the window
    campaign = f.campaign_live(channels=["email"], attribution_window_seconds=3600)
    user_id, late_user = f.unique("u"), f.unique("u")
    touch(campaign=campaign, user_id=user_id, minutes_ago=120)
    recent = touch(campaign=campaign, user_id=user_id, minutes_ago=10)
    touch(campaign=campaign, user_id=late_user, minutes_ago=90)

    # when both shoppers order
    conversions = {c.user_id: c for c in conversions_record(orders=[order(user_id), order(late_user)])}

    # then the first order goes to the recent touch, the second to nobody
    assert conversions[user_id].intervention_id == recent.pk
    assert conversions[late_user].intervention_id is None
    assert OutboxMessage.objects.filter(topic__endswith="conversion-events").count() == 2


def test_it_marks_an_order_after_a_holdout_exposure_as_holdout_and_records_an_order_once():
    # given a shopper whose last exposure was a holdout
    campaign = f.campaign_live(channels=["email"])
    user_id = f.unique("u")
    touch(
        campaign=campaign,
        user_id=user_id,
        minutes_ago=5,
        status=Intervention.Status.SUPPRESSED,
        suppression_reason="holdout",
        is_holdout=True,
    )
    placed = order(user_id)

    # when the order is recorded twice
    first = conversions_record(orders=[placed])
    second = conversions_record(orders=[placed])

    # then one holdout conversion
    assert len(first) == 1
    assert first[0].is_holdout
    assert second == []


def test_it_attributes_an_order_to_a_control_variant_that_had_nothing_to_send():
    # given a shopper assigned to a message-less control variant, and one whose decision was capped
    campaign = f.campaign_live(channels=["email"])
    control_user, capped_user = f.unique("u"), f.unique("u")
    control = touch(
        campaign=campaign,
        user_id=control_user,
        minutes_ago=5,
        status=Intervention.Status.SUPPRESSED,
        suppression_reason="control",
    )
    touch(
        campaign=campaign,
        user_id=capped_user,
        minutes_ago=5,
        status=Intervention.Status.SUPPRESSED,
        suppression_reason="frequency_cap",
    )

    # when both order
    conversions = {c.user_id: c for c in conversions_record(orders=[order(control_user), order(capped_user)])}

    # then the control exposure earns its order (not as holdout); a capped decision exposed nobody
    assert conversions[control_user].intervention_id == control.pk
    assert not conversions[control_user].is_holdout
    assert conversions[capped_user].intervention_id is None
