"""A send run's messages through the real send path (the twilio client against the local Twilio server)
under the provider's rate limit: the run queues its whole audience at once, and the shared per-provider
token bucket still holds the provider to its rate, without spending an attempt or sending anyone twice."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign
from interventions.models import Delivery
from notifications.services import deliveries_send
from tests import fixtures as f
from tests.fixtures import run_started, run_walked

pytestmark = pytest.mark.django_db

RATE = 2.0  # sends per second; the bucket holds one second of them
AUDIENCE = 8
# What separates when a worker took its token from when the local server logged the request: the HTTP
# call's latency, which varies (the first call also opens the connection). One token's period of it.
LATENCY_SLACK = 1 / RATE


def _sms_campaign() -> Campaign:
    """An active scheduled SMS campaign for the shoppers named "Throttle", its one-off time come."""
    campaign = f.campaign_live(
        kind=Campaign.Kind.SCHEDULED,
        trigger="",
        conditions="",
        segment='first_name == "Throttle"',
        channels=["sms"],
        channel_strategy="fixed",
        send_at=timezone.now() + timedelta(days=1),
    )
    Campaign.objects.filter(pk=campaign.pk).update(send_at=timezone.now() - timedelta(seconds=1))
    campaign.refresh_from_db()
    return campaign


def _send_what_is_due(campaign: Campaign) -> int:
    """What the SMS queue's workers do: send every queued delivery that is due, until none is left
    (a throttled one comes back when its ``next_attempt_at`` passes). Returns how many batches it took."""
    queued = Delivery.objects.filter(intervention__campaign=campaign, status=Delivery.Status.QUEUED)
    for batch in range(200):
        if not queued.exists():
            return batch
        due = list(
            queued.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
            ).values_list("pk", flat=True)
        )
        if due:
            deliveries_send(delivery_ids=due)
        else:
            time.sleep(0.05)
    raise AssertionError("the run's deliveries did not settle")


def test_it_holds_the_provider_to_its_rate_limit_while_a_run_sends(providers, provider_stub):
    # given Twilio limited to 2 sends a second, and a scheduled SMS campaign whose run owes 8 shoppers
    providers.NOTIFICATION_RATE_LIMITS = {"twilio": RATE}
    redis.Redis.from_url(providers.REDIS_URL).delete("ie:ratelimit:twilio")
    campaign = _sms_campaign()
    for number in range(AUDIENCE):
        f.shopper(f.unique("t"), first_name="Throttle", phone=f"+3361234{number:04d}", consent_sms=True)
    run = run_walked(run_started(campaign))
    assert (run.state, run.queued) == ("finished", AUDIENCE)

    # when the queue's workers send what the run queued
    _send_what_is_due(campaign)

    # then each shopper got one message, each delivery took one attempt, ...
    received = provider_stub.sms
    assert sorted(m["to"] for m in received) == sorted(f"+3361234{n:04d}" for n in range(AUDIENCE))
    deliveries = Delivery.objects.filter(intervention__campaign=campaign)
    assert set(deliveries.values_list("status", "attempts")) == {("sent", 1)}
    # ... and Twilio never received more than the bucket allows: one second of burst, then the rate
    # (unthrottled, the 8 would arrive within a tenth of a second; here they take at least 3 s)
    times = sorted(m["received_at"] for m in received)
    burst = int(RATE)
    for first in range(len(times)):
        for last in range(first + 1, len(times)):
            least = (last - first + 1 - burst) / RATE - LATENCY_SLACK
            assert times[last] - times[first] >= least, (first, last, times[last] - times[first])
    assert times[-1] - times[0] >= (AUDIENCE - burst) / RATE - LATENCY_SLACK
