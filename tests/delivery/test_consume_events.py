"""The consumer on the real broker: good messages decided, bad ones dead-lettered, offsets after commit."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid

import pytest
from confluent_kafka import Producer
from django.core.management import call_command
from django.db import DatabaseError, connection
from prometheus_client import REGISTRY

from campaigns.models import TemplateLocalization
from delivery.management.commands.consume_events import EventConsumer
from delivery.selectors import campaign_cache
from interventions.models import Intervention
from messaging.kafka import producer_config, topic
from messaging.services import outbox_publish_batch
from personalization.models import Profile
from tests import fixtures as f
from tests.fixtures import consume_count
from tests.messaging.kafka_topics import isolate_topics, json_values, produce, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def run_consumer_until(consumer: EventConsumer, done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the consumer did not get there in time"
        consumer.run_once()


def test_it_decides_good_messages_and_dead_letters_every_kind_of_bad_one(settings):
    # given fresh topics, an active campaign, and a stream mixing good and bad messages
    isolate_topics(settings)
    campaign_cache.invalidate()
    campaign = f.campaign_live(channels=["email"])
    cart_topic, prediction_topic = topic("cart-events-enriched"), topic("prediction-results")
    user_id, buyer = f.unique("u"), f.unique("u")
    # (the shopper's email is known already: the two topics are read in no particular order)
    Profile.objects.create(user_id=user_id, email="shopper@example.com")
    good_prediction = f.prediction_body(user_id=user_id, score=0.91)

    def pred(**changes):
        return f.encode({**f.prediction_body(user_id=user_id, score=0.9), **changes})

    def cart(**changes):
        return f.encode({**f.cart_body(user_id=user_id), **changes})

    items = [{"sku": "S", "price": 1, "quantity": 1}] * 10_001
    bad = {
        "not_json": (cart_topic, b"{this is not json"),
        "not_utf8": (cart_topic, b"\xff\xfe\x00garbage"),
        "missing_field": (prediction_topic, f.encode({**good_prediction, "prediction_id": None})),
        "wrong_type": (
            prediction_topic,
            f.encode({**f.prediction_body(user_id=user_id, score=0.9), "score": "hi"}),
        ),
        "unknown_event_type": (
            cart_topic,
            f.encode(f.cart_body(user_id=user_id, event_type="cart_exploded")),
        ),
        "negative_total": (cart_topic, f.encode(f.cart_body(user_id=user_id, total=-5))),
        "too_many_items": (
            cart_topic,
            f.encode({**f.cart_body(user_id=user_id), "cart": {"total": 1, "items": items}}),
        ),
        "score_above_one": (prediction_topic, f.encode(f.prediction_body(user_id=user_id, score=1.5))),
        "naive_timestamp": (
            prediction_topic,
            f.encode(
                {**f.prediction_body(user_id=user_id, score=0.9), "predicted_at": "2026-11-28T10:00:00"}
            ),
        ),
        "checkout_without_order": (
            cart_topic,
            f.encode({**f.cart_body(user_id=user_id, event_type="checkout_completed"), "order": None}),
        ),
    }
    key = user_id.encode()
    bad_messages = [(name, key, value) for name, value in bad.values()]
    stream = [
        (cart_topic, key, f.encode(f.cart_body(user_id=user_id))),
        *bad_messages[:3],
        (prediction_topic, key, f.encode(good_prediction)),
        *bad_messages[3:],
        (prediction_topic, key, f.encode(good_prediction)),  # a duplicate, after the bad ones
    ]
    checkout = f.cart_body(user_id=buyer, event_type="checkout_completed")
    stream.append((cart_topic, buyer.encode(), f.encode(checkout)))
    produce(stream)

    # when one consumer process runs until it has caught up
    consumer = EventConsumer(batch_size=5, poll_timeout=0.2, group_id=f"h5-{uuid.uuid4().hex[:8]}")
    consumer.setup()
    try:
        consume_count(consumer, len(stream))
    finally:
        consumer.teardown()

    # then the good prediction made exactly one intervention, despite its duplicate
    intervention = Intervention.objects.get(user_id=user_id)
    assert intervention.campaign_id == campaign.pk
    assert intervention.status == "pending"

    # and every bad message is on the DLQ with its reason, origin and original bytes
    dead = read_all(topic("intervention-engine.dlq"), expected=len(bad))
    letters = json_values(dead)
    assert len(letters) == len(bad), [letter["error"] for letter in letters]
    # (two topics: the order between them is not defined, the order within each one is)
    assert sorted(letter["reason"] for letter in letters) == sorted(
        [
            "not_json",
            "not_json",
            "missing_field",
            "wrong_type",
            "unknown_event_type",
            "absurd_value",
            "absurd_value",
            "absurd_value",
            "wrong_type",
            "missing_field",
        ]
    )
    originals = {letter["original"]: letter for letter in letters}
    assert originals["{this is not json"]["reason"] == "not_json"
    assert (
        base64.b64decode(originals[base64.b64encode(bad["not_utf8"][1]).decode()]["original"])
        == (bad["not_utf8"][1])
    )
    assert json.loads(originals[bad["score_above_one"][1].decode()]["original"])["score"] == 1.5
    assert {letter["topic"] for letter in letters} == {cart_topic, prediction_topic}
    assert all(isinstance(letter["offset"], int) for letter in letters)
    assert {dict(m.headers())["dlq.reason"] for m in dead} >= {b"not_json", b"absurd_value"}

    # and an operator sees them with `dlq list` and can replay one to its source topic
    out = io.StringIO()
    call_command("dlq", "list", stdout=out)
    assert f"{len(bad)} message(s)" in out.getvalue()
    position = next(f"{m.partition()}:{m.offset()}" for m in dead if m.headers()[-4][1] == b"not_json")
    call_command("dlq", "replay", position, stdout=io.StringIO())
    on_cart_topic = sum(1 for name, _, _ in stream if name == cart_topic)
    replayed = read_all(cart_topic, expected=on_cart_topic + 1)[-1]
    assert replayed.value() == b"{this is not json"
    assert dict(replayed.headers())["dlq.replayed_from"] == position.encode()

    # and the checkout's conversion reaches Kafka once the relay has run
    assert outbox_publish_batch(producer=Producer(producer_config())) >= 2
    conversions = json_values(read_all(topic("conversion-events"), expected=1))
    assert [c["order_id"] for c in conversions] == [checkout["order"]["order_id"]]
    assert conversions[0]["intervention_id"] is None
    created = [
        e
        for e in json_values(read_all(topic("intervention-events"), expected=2))
        if e["intervention_id"] == str(intervention.pk)
    ]
    assert [e["type"] for e in created] == ["intervention.created", "delivery.queued"]


def test_it_processes_nothing_twice_after_a_restart(settings):
    # given a consumer that processed a prediction and stopped (offsets committed on close)
    isolate_topics(settings)
    campaign_cache.invalidate()
    f.campaign_live(channels=["onsite"], channel_strategy="fixed")
    user_id = f.unique("u")
    group = f"h5-{uuid.uuid4().hex[:8]}"
    produce(
        [
            (
                topic("prediction-results"),
                user_id.encode(),
                f.encode(f.prediction_body(user_id=user_id, score=0.8)),
            )
        ]
    )
    first = EventConsumer(batch_size=10, poll_timeout=0.2, group_id=group)
    first.setup()
    try:
        run_consumer_until(first, lambda: Intervention.objects.filter(user_id=user_id).exists())
    finally:
        first.teardown()

    # when the same prediction is published again and a new consumer of the group starts
    second_body = f.prediction_body(user_id=user_id, score=0.8)  # a new prediction id: a new decision
    produce([(topic("prediction-results"), user_id.encode(), f.encode(second_body))])
    second = EventConsumer(batch_size=10, poll_timeout=0.2, group_id=group)
    second.setup()
    try:
        run_consumer_until(second, lambda: Intervention.objects.filter(user_id=user_id).count() >= 2)
        for _ in range(3):
            second.run_once()
    finally:
        second.teardown()

    # then the first message was not processed again: two interventions, one per prediction
    assert Intervention.objects.filter(user_id=user_id).count() == 2
    seqs = Intervention.objects.filter(user_id=user_id).values_list("seq", flat=True)
    assert sorted(seq or 0 for seq in seqs) == [1, 2]


def test_it_dead_letters_a_message_the_database_refuses_and_decides_the_rest_of_its_batch(settings):
    # given a batch where one valid event cannot be stored: the database refuses its shopper's row (a
    # trigger stands in for whatever a database may refuse that validation cannot know, in this test's
    # transaction only)
    isolate_topics(settings)
    campaign_cache.invalidate()
    f.campaign_live(channels=["onsite"], channel_strategy="fixed", trigger="cart_item_added", conditions="")
    good, poisoned = f.unique("u"), f.unique("u")
    poison = f.cart_body(user_id=poisoned)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_poisoned() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.user_id = '{poisoned}' THEN "
            "RAISE EXCEPTION 'refused by the database' USING ERRCODE = '22000'; END IF; RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_poisoned BEFORE INSERT OR UPDATE ON personalization_profile "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_poisoned()"
        )
    cart_topic = topic("cart-events-enriched")
    produce(
        [
            (cart_topic, b"k", f.encode(f.cart_body(user_id=good))),
            (cart_topic, b"k", f.encode(poison)),
        ]
    )

    # when the consumer meets the batch: it fails, is rewound and retried, then taken one event at a time
    consumer = EventConsumer(
        batch_size=10, poll_timeout=0.2, group_id=f"h5-{uuid.uuid4().hex[:8]}", retry_backoff=0.05
    )
    consumer.setup()
    try:
        consume_count(consumer, 2)
    finally:
        consumer.teardown()

    # then the good event was decided once, and the poisoned one is on the DLQ as a processing error
    assert Intervention.objects.filter(user_id=good).count() == 1
    assert not Intervention.objects.filter(user_id=poisoned).exists()
    letters = json_values(read_all(topic("intervention-engine.dlq"), expected=1))
    assert [(letter["reason"], letter["offset"]) for letter in letters] == [("processing_error", 1)]
    assert letters[0]["error"].startswith("DataError")


@pytest.mark.django_db(transaction=True)
def test_it_keeps_events_for_later_instead_of_dead_lettering_them_while_postgresql_is_away(
    settings, tmp_path
):
    # given a consumer that fell back to one event at a time, holding a good event
    isolate_topics(settings)
    campaign_cache.invalidate()
    f.campaign_live(channels=["onsite"], channel_strategy="fixed", trigger="cart_item_added", conditions="")
    user_id = f.unique("u")
    produce([(topic("cart-events-enriched"), b"k", f.encode(f.cart_body(user_id=user_id)))])
    consumer = EventConsumer(batch_size=10, poll_timeout=0.2, group_id=f"h13-{uuid.uuid4().hex[:8]}")
    consumer.setup()
    try:
        assert consumer.consumer is not None
        assert consumer.handler is not None
        batch: list = []
        deadline = time.monotonic() + 20
        while not batch and time.monotonic() < deadline:
            batch = [m for m in consumer.consumer.consume(num_messages=10, timeout=0.2) if not m.error()]

        # when PostgreSQL does not answer (no server at the socket the connection points to)
        host = connection.settings_dict["HOST"]
        connection.close()
        connection.settings_dict["HOST"] = str(tmp_path)
        try:
            with pytest.raises(DatabaseError):
                consumer.handler.handle_one_by_one(batch)
        finally:
            connection.settings_dict["HOST"] = host
            connection.close()

        # then the event is not dead-lettered, and is decided once PostgreSQL is back
        result = consumer.handler.handle_one_by_one(batch)
    finally:
        consumer.teardown()
    assert (result.valid, result.dead) == (1, 0)
    assert Intervention.objects.filter(user_id=user_id).count() == 1
    assert read_all(topic("intervention-engine.dlq"), expected=1, timeout=3) == []


def test_it_measures_how_long_each_message_waited_between_the_broker_and_its_batch(settings):
    # given three predictions the producer stamped two seconds ago
    isolate_topics(settings)
    campaign_cache.invalidate()
    stamped = int((time.time() - 2) * 1000)
    producer = Producer(producer_config())
    for _ in range(3):
        user_id = f.unique("u")
        body = f.encode(f.prediction_body(user_id=user_id, score=0.1))
        producer.produce(topic("prediction-results"), key=user_id.encode(), value=body, timestamp=stamped)
    assert producer.flush(15) == 0
    count_before, sum_before = _queue_histogram()

    # when the consumer takes them
    consumer = EventConsumer(batch_size=10, poll_timeout=0.2, group_id=f"h5-{uuid.uuid4().hex[:8]}")
    consumer.setup()
    try:
        consume_count(consumer, 3)
    finally:
        consumer.teardown()

    # then each one's wait since its Kafka timestamp is observed: three waits of at least two seconds
    count_after, sum_after = _queue_histogram()
    assert count_after - count_before == 3
    assert sum_after - sum_before >= 3 * 2.0


def _queue_histogram() -> tuple[float, float]:
    return (
        REGISTRY.get_sample_value("ie_consumer_queue_seconds_count") or 0.0,
        REGISTRY.get_sample_value("ie_consumer_queue_seconds_sum") or 0.0,
    )


def test_it_fails_only_the_decisions_of_a_template_over_its_render_budget(settings):
    # given two campaigns on cart events: the first (higher priority) has a template stored before the
    # render budget existed, whose nested loops run a hundred million times; the second is ordinary
    isolate_topics(settings)
    campaign_cache.invalidate()
    burner = f.campaign_live(
        channels=["onsite"], channel_strategy="fixed", trigger="cart_item_added", conditions="", priority=10
    )
    burning = burner.variants.values_list("onsite_template_id", flat=True)
    TemplateLocalization.objects.filter(template_id__in=burning).update(
        body_text="{% for a in [0] * 10000 %}{% for b in [0] * 10000 %}{% endfor %}{% endfor %}"
    )
    ordinary = f.campaign_live(
        channels=["onsite"], channel_strategy="fixed", trigger="cart_item_added", conditions=""
    )
    shoppers = [f.unique("u") for _ in range(5)]
    cart_topic = topic("cart-events-enriched")
    produce([(cart_topic, s.encode(), f.encode(f.cart_body(user_id=s))) for s in shoppers])

    # when the consumer takes the events
    consumer = EventConsumer(batch_size=10, poll_timeout=0.2, group_id=f"h13-{uuid.uuid4().hex[:8]}")
    consumer.setup()
    started = time.monotonic()
    try:
        consume_count(consumer, len(shoppers))
    finally:
        consumer.teardown()
    elapsed = time.monotonic() - started

    # then each shopper's decision for the burning template failed alone, recorded as a render error,
    # and the ordinary campaign was decided for every shopper, without the consumer stalling
    burned = Intervention.objects.filter(campaign=burner, user_id__in=shoppers)
    assert sorted(burned.values_list("status", "suppression_reason")) == [("suppressed", "render_error")] * 5
    decided = Intervention.objects.filter(campaign=ordinary, user_id__in=shoppers)
    assert sorted(decided.values_list("user_id", flat=True)) == sorted(shoppers)
    assert set(decided.values_list("status", flat=True)) == {Intervention.Status.PENDING}
    assert elapsed < 10, elapsed
