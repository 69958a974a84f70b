"""The consumer fed arbitrary bytes and mutated valid events (Hypothesis, a few examples; ``make chaos``
runs many more through the real process): it never fails a batch, every message the contract refuses is
dead-lettered with its reason, and the good events around them are decided."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.fuzz import fuzz_messages, good_prediction, refusal
from delivery.management.commands.consume_events import EventConsumer
from delivery.selectors import campaign_cache
from interventions.models import Intervention
from messaging.kafka import topic
from tests import fixtures as f
from tests.fixtures import consume_count
from tests.messaging.kafka_topics import isolate_topics, json_values, produce, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def test_every_fuzzed_message_is_refused_with_a_reason_or_accepted_and_nothing_else():
    # given any message Hypothesis can make (no broker: the validation alone, many examples)
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(fuzz_messages)
    def check(message: tuple[str, bytes]) -> None:
        # then validation answers a reason or accepts it; any other exception would stall a partition
        reason = refusal(*message)
        assert reason is None or reason in {
            "not_json",
            "missing_field",
            "wrong_type",
            "unknown_event_type",
            "absurd_value",
        }

    check()


def test_it_refuses_a_nul_character_that_postgresql_could_not_store():
    # given a cart event whose item name holds an escaped NUL (found by Hypothesis: the whole batch failed)
    body = f.cart_body(user_id="u-nul")
    body["cart"]["items"][0]["name"] = "Trail\u0000shoe"

    # when / then it is refused as the contract's bad input, not left to fail in the database
    assert refusal("cart-events-enriched", f.encode(body)) == "absurd_value"
    # and a literal backslash-u in text is still fine
    body["cart"]["items"][0]["name"] = "Trail \\u0000 shoe"
    assert refusal("cart-events-enriched", f.encode(body)) is None


@settings(
    max_examples=4,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(fuzz_messages, min_size=3, max_size=12))
def test_it_dead_letters_the_bad_ones_and_decides_the_good_ones_around_them(settings, messages):
    # given fresh topics, a campaign that decides every sure prediction, and a known-good prediction
    # before and after the fuzzed messages
    isolate_topics(settings)
    campaign_cache.invalidate()
    campaign = f.campaign_live(channels=["onsite"], channel_strategy="fixed", conditions="score >= 0.95")
    first, last = f.unique("u-good"), f.unique("u-good")
    stream = [
        (topic("prediction-results"), first.encode(), good_prediction(user_id=first)),
        *((topic(name), b"k", value) for name, value in messages),
        (topic("prediction-results"), last.encode(), good_prediction(user_id=last)),
    ]
    refused = [reason for name, value in messages if (reason := refusal(name, value)) is not None]
    produce(stream)

    # when the consumer has handled them all
    consumer = EventConsumer(batch_size=5, poll_timeout=0.2, group_id=f"fuzz-{uuid.uuid4().hex[:8]}")
    consumer.setup()
    try:
        consume_count(consumer, len(stream))
    finally:
        consumer.teardown()

    # then every refused message is on the DLQ with its reason, and nothing else is
    letters = json_values(read_all(topic("intervention-engine.dlq"), expected=len(refused), timeout=10))
    assert sorted(letter["reason"] for letter in letters) == sorted(refused)
    # and both good predictions were decided
    decided = Intervention.objects.filter(campaign=campaign, user_id__in=[first, last])
    assert decided.count() == 2
