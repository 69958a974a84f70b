"""Drill: the consumer fed arbitrary bytes and mutated valid events (Hypothesis).

    python -m chaos fuzz [--messages 2000] [--every 10]

A real ``manage.py consume_events`` process reads private topics carrying Hypothesis-made messages
(random bytes, random JSON, and realistic events with a field deleted, replaced by any JSON value, or
their bytes cut or spliced), with a known-good prediction every ``--every`` messages. Passes when:

* the consumer never exits and never fails a batch (no ``consumer_batch_failed`` in its log);
* every message the contract refuses is on the dead-letter topic with a reason, at its own offset;
* every known-good prediction around them is decided (one intervention each);
* the group has committed every offset (nothing stalled behind a poison message).

The strategies also drive ``tests/delivery/test_consume_fuzz.py`` (a few examples, in ``make test``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INPUTS = ("cart-events-enriched", "prediction-results")

# Any JSON document, the awkward corners included: NaN and infinities (json.dumps writes them), integers
# of any size, deep nesting, control characters and lone surrogates in text.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "2026-11-28T10:00:00", "2026-11-28T10:00:00+00:00", "9999-12-31T23:59:59Z"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document that can be deleted or replaced."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, bytes]:
    """A realistic event (the traffic mix of ``bench.decisions``) with one thing wrong, or nothing."""
    from bench.decisions import event_body

    seed = draw(st.integers(0, 2**32 - 1))
    name, _key, value = event_body(random.Random(seed), users=50, user_prefix="fuzz-u-")  # noqa: S311
    body = json.loads(value)
    how = draw(st.sampled_from(["replace", "delete", "truncate", "splice", "retype"]))
    if how in ("replace", "delete", "retype"):
        path = draw(st.sampled_from(_paths(body)))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if how == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif how == "retype":
            old = parent[path[-1]]
            parent[path[-1]] = str(old) if not isinstance(old, str) else draw(st.integers() | st.floats())
        else:
            parent[path[-1]] = draw(json_values)
        value = _encode(body)
    elif how == "truncate":
        value = value[: draw(st.integers(0, len(value)))]
    else:
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(st.binary(min_size=1, max_size=8)) + value[at:]
    # Now and then on the other input topic: a prediction read as a cart event, and back.
    if draw(st.integers(0, 9)) == 0:
        name = INPUTS[1] if name == INPUTS[0] else INPUTS[0]
    return name, value


fuzz_messages: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    st.tuples(st.sampled_from(INPUTS), st.binary(max_size=300)),
    st.tuples(st.sampled_from(INPUTS), json_values.map(_encode)),
    mutated_events(),
)


def refusal(name: str, value: bytes) -> str | None:
    """The reason the contract refuses a message (the consumer's own validation), or None if valid.
    Anything other than a refusal escaping validation is the bug this drill looks for, and raises."""
    from delivery.events import InvalidEvent, parse_cart_event, parse_prediction

    parse = parse_cart_event if name == "cart-events-enriched" else parse_prediction
    try:
        parse(value)
    except InvalidEvent as exc:
        return exc.reason
    return None


def good_prediction(*, user_id: str) -> bytes:
    from django.utils import timezone

    return _encode(
        {
            "prediction_id": f"fuzz-{uuid.uuid4().hex}",
            "model": "cart_abandonment",
            "model_version": "fuzz",
            "user_id": user_id,
            "score": 0.99,
            "predicted_at": timezone.now().isoformat(),
        }
    )


def draw_messages(count: int, *, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` messages from :data:`fuzz_messages`, drawn in lists by Hypothesis itself."""
    drawn: list[tuple[str, bytes]] = []

    @settings(
        max_examples=max(1, count // 20) * 4,
        database=None,
        derandomize=seed == 0,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(fuzz_messages, min_size=1, max_size=40))
    def collect(messages: list[tuple[str, bytes]]) -> None:
        drawn.extend(messages)

    collect()
    if len(drawn) < count:
        drawn += draw_messages(count - len(drawn), seed=seed + 1)
    return drawn[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos fuzz", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--every", type=int, default=10, help="a known-good prediction every N messages")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args(argv)

    from chaos.sends import django_setup

    django_setup({"LOG_LEVEL": "WARNING"})
    from confluent_kafka import Producer
    from django.conf import settings as django_settings

    from campaigns.models import Campaign
    from chaos.decisions import drained
    from chaos.faults import topic_read_all
    from chaos.worker import ConsumerProcess
    from interventions.models import Intervention
    from messaging.kafka import ensure_topics, producer_config
    from tests import fixtures

    run = uuid.uuid4().hex[:8]
    prefix = f"chaos-{run}."
    django_settings.KAFKA_TOPICS = {name: f"{prefix}{name}" for name in django_settings.KAFKA_TOPICS}
    topics = django_settings.KAFKA_TOPICS
    ensure_topics(partitions=3)
    campaign = fixtures.campaign_live(
        channels=["onsite"], channel_strategy="fixed", conditions="score >= 0.95"
    )
    group = f"chaos-{run}"
    log_path = Path(tempfile.mkdtemp(prefix="chaos-")) / "consumer.log"
    consumer = ConsumerProcess(
        env={"KAFKA_TOPIC_PREFIX": prefix, "KAFKA_CONSUMER_GROUP": group, "LOG_LEVEL": "WARNING"},
        log_path=log_path,
    )
    started = time.monotonic()
    try:
        messages = draw_messages(args.messages)
        expected_dead: dict[str, int] = Counter()
        refused_at: set[tuple[str, int, int]] = set()
        ends: dict[tuple[str, int], int] = {}
        sentinels: list[str] = []
        producer = Producer(producer_config())

        def remember(reason: str | None) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, msg: Any) -> None:
                if err is not None:
                    return
                ends[(msg.topic(), msg.partition())] = max(
                    msg.offset() + 1, ends.get((msg.topic(), msg.partition()), 0)
                )
                if reason is not None:
                    refused_at.add((msg.topic(), msg.partition(), msg.offset()))

            return on_delivery

        consumer.start()
        for n, (name, value) in enumerate(messages):
            if n % args.every == 0:
                user_id = f"chaos-{run}-good-{n}"
                sentinels.append(user_id)
                producer.produce(
                    topics[INPUTS[1]],
                    key=user_id.encode(),
                    value=good_prediction(user_id=user_id),
                    on_delivery=remember(None),
                )
            reason = refusal(name, value)
            if reason is not None:
                expected_dead[reason] += 1
            producer.produce(
                topics[name],
                key=f"k{n % 7}".encode(),
                value=value,
                on_delivery=remember(reason),
            )
            producer.poll(0)
        assert producer.flush(60) == 0
        positions = sorted(refused_at)
        deadline = started + args.timeout
        while time.monotonic() < deadline and not drained(group=group, topics=topics, ends=ends):
            if consumer.process is not None and consumer.process.poll() is not None:
                break
            time.sleep(1)
        alive = consumer.process is not None and consumer.process.poll() is None
        consumer.stop(wait=30)
        letters = [json.loads(m.value()) for m in topic_read_all(topics["intervention-engine.dlq"])]
        dead_at = {(r.get("topic"), r.get("partition"), r.get("offset")) for r in letters}
        missing = [p for p in positions if p not in dead_at]
        reasons = Counter(str(r.get("reason") or "") for r in letters)
        decided = set(
            Intervention.objects.filter(campaign=campaign, user_id__in=sentinels).values_list(
                "user_id", flat=True
            )
        )
        log = log_path.read_text(errors="replace")
        summary = {
            "messages": len(messages),
            "refused_by_contract": sum(expected_dead.values()),
            "accepted": len(messages) - sum(expected_dead.values()),
            "dead_letters": len(letters),
            "dead_letter_reasons": dict(reasons),
            "refused_not_dead_lettered": len(missing),
            "dead_letters_without_reason": reasons.get("", 0),
            "good_published": len(sentinels),
            "good_decided": len(decided),
            "consumer_alive": alive,
            "batch_failures": log.count("consumer_batch_failed"),
            "drained": drained(group=group, topics=topics, ends=ends),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(summary), flush=True)
        ok = (
            alive
            and summary["drained"]
            and not missing
            and not reasons.get("", 0)
            and len(decided) == len(sentinels)
            and summary["batch_failures"] == 0
        )
        print("PASS" if ok else f"FAIL (consumer log: {log_path})", flush=True)
        return 0 if ok else 1
    finally:
        consumer.kill9()
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.COMPLETED)


if __name__ == "__main__":
    sys.exit(main())
