"""Delayed interventions released by beat, and stale ones expired."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.services import decisions_process_batch, decisions_release_due
from interventions.models import Delivery, Intervention
from interventions.services import interventions_expire
from messaging.models import OutboxMessage
from tests import fixtures as f

pytestmark = pytest.mark.django_db


def decide_delayed(*, require_open_cart: bool) -> tuple[str, Intervention]:
    f.campaign_live(
        channels=["onsite"], channel_strategy="fixed", delay_seconds=600, require_open_cart=require_open_cart
    )
    user_id = f.unique("u")
    decisions_process_batch(
        events=[f.prediction(user_id=user_id, score=0.9)], campaigns=f.active_set(), after_commit=False
    )
    return user_id, Intervention.objects.get(user_id=user_id)


def test_it_releases_a_due_intervention_with_its_delivery_and_sequence_number():
    # given a scheduled on-site intervention
    _user_id, intervention = decide_delayed(require_open_cart=True)
    assert intervention.status == Intervention.Status.SCHEDULED

    # when beat runs before and after its time
    early = decisions_release_due()
    late = decisions_release_due(now=timezone.now() + timedelta(minutes=11))

    # then it is released once, pending with a queued delivery and the shopper's next seq
    intervention.refresh_from_db()
    assert (early.created, late.created) == ([], [intervention.pk])
    assert (intervention.status, intervention.seq) == ("pending", 1)
    assert Delivery.objects.get(intervention=intervention).status == Delivery.Status.QUEUED


def test_it_cancels_a_due_intervention_when_the_cart_was_checked_out():
    # given a scheduled intervention requiring an open cart, and the shopper orders meanwhile
    user_id, intervention = decide_delayed(require_open_cart=True)
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id, event_type="checkout_completed")],
        campaigns=f.active_set(),
        after_commit=False,
    )
    # (the exit event already cancelled it; make it scheduled again to exercise the release check alone)
    Intervention.objects.filter(pk=intervention.pk).update(status=Intervention.Status.SCHEDULED)

    # when beat releases due interventions
    outcome = decisions_release_due(now=timezone.now() + timedelta(minutes=11))

    # then it is cancelled, not sent
    intervention.refresh_from_db()
    assert outcome.cancelled == 1
    assert intervention.status == Intervention.Status.CANCELLED
    assert not Delivery.objects.filter(intervention=intervention).exists()


def test_it_expires_pending_interventions_never_handed_to_a_provider():
    # given a released on-site intervention whose expiry has passed
    _, intervention = decide_delayed(require_open_cart=False)
    decisions_release_due(now=timezone.now() + timedelta(minutes=11))

    # when beat expires stale interventions
    expired = interventions_expire(now=timezone.now() + timedelta(hours=2))

    # then it is expired, its delivery cancelled, and an intervention.expired event is written
    intervention.refresh_from_db()
    assert expired == 1
    assert intervention.status == Intervention.Status.EXPIRED
    assert Delivery.objects.get(intervention=intervention).status == Delivery.Status.CANCELLED
    assert OutboxMessage.objects.filter(
        payload__intervention_id=str(intervention.pk), payload__type="intervention.expired"
    ).exists()
