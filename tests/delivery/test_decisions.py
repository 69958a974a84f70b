"""The decision path through its public service, against the real PostgreSQL and Redis."""

from __future__ import annotations

from datetime import time

import pytest
from django.db import transaction

from campaigns.models import Campaign
from core.redis import redis_sync
from delivery.events import InboundEvent, parse_cart_event, parse_prediction
from delivery.handoff import Handoff
from delivery.services import decisions_process_batch
from interventions.models import Delivery, Intervention
from messaging.models import OutboxMessage
from personalization.models import Profile
from tests import fixtures as f
from tracking.models import Conversion

pytestmark = pytest.mark.django_db


def lifecycle_types(intervention: Intervention) -> list[str]:
    rows = OutboxMessage.objects.filter(topic__endswith="intervention-events").order_by("id")
    return [r.payload["type"] for r in rows if r.payload["intervention_id"] == str(intervention.pk)]


def test_it_creates_one_intervention_with_variant_and_content_above_threshold():
    # given an active campaign on cart-abandonment predictions with score >= 0.7, email only
    campaign = f.campaign_live(channels=["email"], variants=("A",))
    user_id = f.unique("u")
    cart = f.cart_event(user_id=user_id, total=129.9)

    # when the shopper's cart event and a 0.83 prediction are decided
    outcome = decisions_process_batch(
        events=[cart, f.prediction(user_id=user_id, score=0.83)], campaigns=f.active_set(), after_commit=False
    )

    # then exactly one pending email intervention exists, with the variant's content rendered
    intervention = Intervention.objects.get(campaign=campaign)
    assert outcome.created == [intervention.pk]
    assert intervention.status == Intervention.Status.PENDING
    assert intervention.variant is not None
    assert intervention.variant.name == "A"
    assert intervention.channel == "email"
    assert intervention.content["subject"] == "A: 129.9 in your cart"
    assert "Ada" in intervention.content["body_text"]
    assert Delivery.objects.get(intervention=intervention).status == Delivery.Status.QUEUED
    assert lifecycle_types(intervention) == ["intervention.created", "delivery.queued"]
    assert Profile.objects.get(user_id=user_id).email == f"{user_id}@example.com"


def test_it_decides_nothing_below_threshold_or_outside_the_segment():
    # given a campaign for gold-tier shoppers with a cart of 50 or more
    f.campaign_live(channels=["email"], segment='cart.total >= 50 and attributes.tier == "gold"')
    low, silver = f.unique("u"), f.unique("u")
    events = [
        f.cart_event(user_id=low, total=120, user={"email": "a@example.com", "attributes": {"tier": "gold"}}),
        f.prediction(user_id=low, score=0.5),
        f.cart_event(
            user_id=silver, total=120, user={"email": "b@example.com", "attributes": {"tier": "silver"}}
        ),
        f.prediction(user_id=silver, score=0.95),
    ]

    # when a low score for a gold shopper and a high score for a silver one are decided
    decisions_process_batch(events=events, campaigns=f.active_set(), after_commit=False)

    # then no intervention at all
    assert not Intervention.objects.filter(user_id__in=[low, silver]).exists()


def test_it_has_the_effect_of_a_duplicate_once():
    # given a campaign and one prediction
    f.campaign_live(channels=["email"])
    user_id = f.unique("u")
    body = f.prediction_body(user_id=user_id, score=0.9)
    campaigns = f.active_set()
    event = parse_prediction(f.encode(body))

    # when the same prediction comes twice in one batch and once more in a later batch
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id), event, parse_prediction(f.encode(body))],
        campaigns=campaigns,
        after_commit=False,
    )
    outcome = decisions_process_batch(
        events=[parse_prediction(f.encode(body))], campaigns=campaigns, after_commit=False
    )

    # then one intervention, one delivery, one "created" event
    intervention = Intervention.objects.get(user_id=user_id)
    assert outcome.created == []
    assert outcome.duplicates == 1
    assert Delivery.objects.filter(intervention=intervention).count() == 1
    assert lifecycle_types(intervention).count("intervention.created") == 1


def test_it_replays_a_batch_rolled_back_before_commit_as_if_it_ran_once():
    # given a campaign and a batch with a prediction and a checkout of another shopper
    f.campaign_live(channels=["email"])
    user_id, buyer = f.unique("u"), f.unique("u")
    pred = f.prediction_body(user_id=user_id, score=0.9)
    checkout = f.cart_body(user_id=buyer, event_type="checkout_completed")
    campaigns = f.active_set()

    def batch() -> list[InboundEvent]:
        return [parse_prediction(f.encode(pred)), parse_cart_event(f.encode(checkout))]

    # when the batch runs, the process "crashes" before the commit, and the batch is redelivered
    class Crash(Exception):
        pass

    def run_then_crash() -> None:
        with transaction.atomic():
            decisions_process_batch(events=batch(), campaigns=campaigns, after_commit=False)
            assert Intervention.objects.filter(user_id=user_id).count() == 1
            raise Crash

    with pytest.raises(Crash):
        run_then_crash()
    assert not Intervention.objects.filter(user_id=user_id).exists()
    decisions_process_batch(events=batch(), campaigns=campaigns, after_commit=False)
    decisions_process_batch(events=batch(), campaigns=campaigns, after_commit=False)

    # then one intervention, one conversion, and the order counted once on the profile
    assert Intervention.objects.filter(user_id=user_id).count() == 1
    assert Conversion.objects.filter(user_id=buyer).count() == 1
    assert Profile.objects.get(user_id=buyer).orders_count == 1


def test_it_cancels_pending_interventions_and_attributes_the_order_on_checkout():
    # given a pending email intervention for a shopper
    campaign = f.campaign_live(channels=["email"], exit_events=["checkout_completed"])
    user_id = f.unique("u")
    campaigns = f.active_set()
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id), f.prediction(user_id=user_id, score=0.9)],
        campaigns=campaigns,
        after_commit=False,
    )
    intervention = Intervention.objects.get(user_id=user_id)

    # when the shopper checks out
    checkout = f.cart_event(user_id=user_id, event_type="checkout_completed", total=80.5)
    outcome = decisions_process_batch(events=[checkout], campaigns=campaigns, after_commit=False)

    # then the intervention is cancelled with its queued delivery, and the order is attributed to it
    intervention.refresh_from_db()
    assert outcome.cancelled == 1
    assert intervention.status == Intervention.Status.CANCELLED
    assert Delivery.objects.get(intervention=intervention).status == Delivery.Status.CANCELLED
    assert lifecycle_types(intervention)[-1] == "intervention.cancelled"
    conversion = Conversion.objects.get(user_id=user_id)
    assert conversion.intervention_id == intervention.pk
    assert conversion.campaign_id == campaign.pk
    assert str(conversion.revenue) == "80.50"
    message = OutboxMessage.objects.get(topic__endswith="conversion-events", payload__user_id=user_id)
    assert message.payload["type"] == "conversion.attributed"
    assert message.payload["intervention_id"] == str(intervention.pk)
    assert message.payload["is_holdout"] is False


def test_it_publishes_an_unattributed_order_without_an_intervention():
    # given a shopper who never received anything
    user_id = f.unique("u")

    # when they check out
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id, event_type="checkout_completed")],
        campaigns=f.active_set(),
        after_commit=False,
    )

    # then the order is still published, with no intervention
    message = OutboxMessage.objects.get(topic__endswith="conversion-events", payload__user_id=user_id)
    assert message.payload["type"] == "conversion.unattributed"
    assert message.payload["intervention_id"] is None


def test_it_records_holdout_exposures_and_attributes_their_orders_as_holdout():
    # given a campaign whose every shopper is in the holdout
    f.campaign_live(channels=["email"], holdout_percent=100)
    user_id = f.unique("u")
    campaigns = f.active_set()

    # when a prediction fires and the shopper then orders
    decisions_process_batch(
        events=[f.prediction(user_id=user_id, score=0.9)], campaigns=campaigns, after_commit=False
    )
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id, event_type="checkout_completed")],
        campaigns=campaigns,
        after_commit=False,
    )

    # then the exposure is a suppressed holdout intervention and the conversion is marked holdout
    intervention = Intervention.objects.get(user_id=user_id)
    assert (intervention.status, intervention.suppression_reason) == ("suppressed", "holdout")
    assert intervention.is_holdout
    assert not Delivery.objects.filter(intervention=intervention).exists()
    assert Conversion.objects.get(user_id=user_id).is_holdout


def test_it_lets_the_highest_priority_campaign_win_and_suppresses_the_others():
    # given two campaigns on the same trigger
    low = f.campaign_live(channels=["email"], priority=1)
    high = f.campaign_live(channels=["email"], priority=10)
    user_id = f.unique("u")

    # when one prediction matches both
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id), f.prediction(user_id=user_id, score=0.9)],
        campaigns=f.active_set(),
        after_commit=False,
    )

    # then the high-priority one is sent and the other is suppressed for arbitration
    assert Intervention.objects.get(campaign=high).status == Intervention.Status.PENDING
    loser = Intervention.objects.get(campaign=low)
    assert (loser.status, loser.suppression_reason) == ("suppressed", "arbitration")


@pytest.mark.parametrize("consumer", [False, True], ids=["in-line", "as-the-consumer"])
def test_it_applies_the_frequency_cap_and_the_daily_budget(
    settings, django_capture_on_commit_callbacks, consumer
):
    # given a campaign capped at one per day, and a daily budget of two messages across campaigns;
    # decided in line (the API) or as the consumer does, whose sends are written to Redis by the next
    # batch's caps read
    handoff = Handoff(threaded=consumer)
    settings.SHOPPER_DAILY_MESSAGE_BUDGET = 2
    capped = f.campaign_live(channels=["email"], frequency_cap_count=1, frequency_cap_window_seconds=3600)
    other = f.campaign_live(channels=["email"], trigger="cart_abandoned", conditions="")
    user_id = f.unique("u")
    campaigns = f.active_set()

    def decide(events: list[InboundEvent]) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            decisions_process_batch(events=events, campaigns=campaigns, handoff=handoff)

    # when the shopper triggers the capped campaign twice and the other campaign twice (each batch
    # committed, so the sends are counted in Redis after commit)
    decide([f.cart_event(user_id=user_id), f.prediction(user_id=user_id, score=0.9)])
    decide([f.prediction(user_id=user_id, score=0.9)])
    decide([f.cart_event(user_id=user_id, event_type="cart_abandoned")])
    decide([f.cart_event(user_id=user_id, event_type="cart_abandoned")])

    # then one capped send, one send of the other campaign, then the budget stops the fourth
    def statuses(campaign: Campaign) -> list[tuple[str, str]]:
        rows = Intervention.objects.filter(campaign=campaign).order_by("created_at")
        return list(rows.values_list("status", "suppression_reason"))

    assert statuses(capped) == [("pending", ""), ("suppressed", "frequency_cap")]
    assert statuses(other) == [("pending", ""), ("suppressed", "daily_budget")]
    # and, once the consumer idles, both sends are counted in the shopper's day
    handoff.caps_record_pending()
    handoff.close()
    budget = list(redis_sync().scan_iter(f"ie:budget:{user_id}:*"))
    assert [int(redis_sync().get(key) or 0) for key in budget] == [2]


def test_it_holds_back_email_in_quiet_hours_but_not_onsite():
    # given a shopper whose quiet hours cover the whole day, and an email campaign
    campaign = f.campaign_live(channels=["email"])
    user_id = f.unique("u")
    Profile.objects.create(
        user_id=user_id, email="q@example.com", quiet_hours_start=time(0, 0), quiet_hours_end=time(23, 59, 59)
    )

    # when a prediction fires
    decisions_process_batch(
        events=[f.prediction(user_id=user_id, score=0.9)], campaigns=f.active_set(), after_commit=False
    )

    # then it is suppressed for quiet hours
    intervention = Intervention.objects.get(campaign=campaign)
    assert intervention.suppression_reason == "quiet_hours"


def test_it_schedules_a_delayed_intervention_and_gives_each_onsite_one_a_sequence_number():
    # given an on-site campaign with a delay and one without
    delayed = f.campaign_live(channels=["onsite"], channel_strategy="fixed", delay_seconds=1800, priority=5)
    user_id = f.unique("u")
    f.campaign_live(channels=["onsite"], channel_strategy="fixed", trigger="cart_abandoned", conditions="")

    # when both fire
    decisions_process_batch(
        events=[
            f.prediction(user_id=user_id, score=0.9),
            f.cart_event(user_id=user_id, event_type="cart_abandoned"),
        ],
        campaigns=f.active_set(),
        after_commit=False,
    )

    # then the delayed one is scheduled and the immediate on-site one carries the shopper's next seq
    scheduled = Intervention.objects.get(campaign=delayed)
    assert scheduled.status == Intervention.Status.SCHEDULED
    assert scheduled.scheduled_for is not None
    now = Intervention.objects.exclude(campaign=delayed).get(user_id=user_id)
    assert (now.status, now.channel, now.seq) == ("pending", "onsite", 1)
    assert Profile.objects.get(user_id=user_id).onsite_seq == 1
