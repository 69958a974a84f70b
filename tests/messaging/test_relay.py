"""The outbox relay against the real broker: nothing lost while Kafka is away, nothing for a rollback."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from django.db import transaction

from messaging.kafka import producer_config, topic
from messaging.management.commands.relay_outbox import OutboxRelay
from messaging.models import OutboxMessage
from messaging.services import outbox_enqueue, outbox_enqueue_many, outbox_publish_batch
from tests.messaging.kafka_topics import isolate_topics, json_values, read_all
from tests.processes import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def test_it_keeps_rows_while_kafka_is_down_and_publishes_them_once_it_is_back(settings):
    # given three outbox rows and a broker nobody listens on
    isolate_topics(settings)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    outbox_enqueue_many(messages=[("intervention-events", "u-1", {"event_id": i}) for i in ids])
    down = OutboxRelay(
        batch_size=100,
        idle_seconds=0.01,
        message_timeout=1.0,
        max_backoff=0.05,
        producer_overrides={"bootstrap.servers": f"127.0.0.1:{free_port()}"},
    )
    down.setup()

    # when the relay runs while Kafka is down
    down.run_once()
    down.teardown()

    # then every row is still unpublished, with the attempt and the error recorded, and it backed off
    rows = list(OutboxMessage.objects.order_by("id"))
    assert [r.published_at for r in rows] == [None, None, None]
    assert all(r.attempts == 1 and r.last_error for r in rows)
    assert down.failures == 1

    # when Kafka is reachable again
    up = OutboxRelay(batch_size=100, idle_seconds=0.01)
    up.setup()
    up.run_once()
    up.teardown()

    # then each row is published exactly once, in order, keyed by user
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    messages = read_all(topic("intervention-events"), expected=4, timeout=2)
    assert [m["event_id"] for m in json_values(messages)] == ids
    assert {m.key() for m in messages} == {b"u-1"}


def test_it_publishes_nothing_for_a_rolled_back_transaction(settings):
    # given a change that writes an outbox row and then fails
    isolate_topics(settings)

    def failing_change() -> None:
        with transaction.atomic():
            outbox_enqueue(topic="conversion-events", key="u-2", payload={"event_id": "rolled-back"})
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    outbox_enqueue(topic="conversion-events", key="u-2", payload={"event_id": "committed"})

    # when the relay runs
    published = outbox_publish_batch(producer=Producer(producer_config()))

    # then only the committed change reached Kafka
    assert published == 1
    values = json_values(read_all(topic("conversion-events"), expected=2, timeout=2))
    assert [v["event_id"] for v in values] == ["committed"]
