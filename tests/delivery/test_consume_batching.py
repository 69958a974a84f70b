"""The consumer's batch step on the real broker: a trickle is decided at once, a backlog in big batches."""

from __future__ import annotations

import uuid

import pytest

from delivery.management.commands.consume_events import EventConsumer
from delivery.selectors import campaign_cache
from interventions.models import Intervention
from messaging.kafka import topic
from personalization.models import Profile
from tests import fixtures as f
from tests.messaging.kafka_topics import isolate_topics, produce

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def predictions(count: int) -> tuple[list[str], list[tuple[str, bytes, bytes]]]:
    users = [f.unique("u") for _ in range(count)]
    for user_id in users:
        Profile.objects.create(user_id=user_id, email=f"{user_id}@example.com")
    name = topic("prediction-results")
    return users, [(name, u.encode(), f.encode(f.prediction_body(user_id=u, score=0.9))) for u in users]


def test_a_trickle_is_decided_as_it_arrives_and_a_backlog_in_big_batches(settings):
    # given fresh topics, an active campaign, and a consumer whose batches hold up to 500 messages
    isolate_topics(settings)
    campaign_cache.invalidate()
    campaign = f.campaign_live(channels=["email"])
    # (a wait far longer than the test: the step must not wait for it, nor for a full batch)
    consumer = EventConsumer(batch_size=500, poll_timeout=600, group_id=f"h4-{uuid.uuid4().hex[:8]}")
    consumer.setup()
    try:
        # when ONE prediction arrives
        (first,), stream = predictions(1)
        produce(stream)
        batch = consumer.next_batch()

        # then the step returns it alone, and it is decided
        assert len(batch) == 1
        result = consumer.process(batch)
        assert result is not None
        assert result.valid == 1
        assert Intervention.objects.get(user_id=first, campaign=campaign).status == "pending"

        # when a backlog of 40 is there
        users, stream = predictions(40)
        produce(stream)
        sizes: list[int] = []
        while sum(sizes) < len(users):
            batch = consumer.next_batch()
            sizes.append(len(batch))
            assert consumer.process(batch) is not None
    finally:
        consumer.teardown()

    # then it came in batches of more than one message, and every one was decided once
    assert max(sizes) > 1
    assert sum(sizes) == len(users)
    assert Intervention.objects.filter(user_id__in=users, campaign=campaign).count() == len(users)
