"""Drill: the Kafka consumer killed with SIGKILL again and again while shoppers' events stream in.

    python -m chaos decisions [--events 3000] [--rate 200] [--kills 4] [--users 400]

A real ``manage.py consume_events`` process decides a realistic event stream (the 20 campaigns and the
traffic mix of ``bench.decisions``, invalid events included) on private topics; it is killed with
``kill -9`` at random moments and started again. Once every offset is committed, the effects are checked
against what was published — the consumer's promise is at-least-once in, exactly-once effect:

* every shopper's profile holds their last published event (``last_seen_at``): nothing lost;
* every shopper's ``orders_count`` is the number of orders they placed: no order counted twice;
* every intervention has exactly one ``intervention.created`` or ``intervention.suppressed`` outbox row;
* no shopper's daily-budget counter in Redis exceeds the sends decided for them: no send counted twice;
* every invalid event is on the dead-letter topic.

Needs DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS (``make chaos`` provides test servers).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos.sends import django_setup
from chaos.worker import ConsumerProcess

BASE_DIR = Path(__file__).resolve().parent.parent
INPUTS = ("cart-events-enriched", "prediction-results")


def publish(
    *, topics: dict[str, str], events: int, rate: int, users: int, prefix: str, invalid: bool = True
) -> tuple[dict[str, Any], threading.Event]:
    """Publish in a thread at ``rate`` events/s; returns what was published (filled as it goes) and an
    event set when it is all acknowledged. ``invalid=False`` leaves out the mix's invalid events."""
    from confluent_kafka import Producer

    from bench.decisions import event_body
    from messaging.kafka import producer_config

    published: dict[str, Any] = {"last_seen": {}, "orders": Counter(), "invalid": 0, "count": 0, "ends": {}}
    done = threading.Event()

    def acknowledged(err: Any, msg: Any) -> None:
        if err is None:
            where = (msg.topic(), msg.partition())
            published["ends"][where] = max(msg.offset() + 1, published["ends"].get(where, 0))

    def run() -> None:
        producer = Producer(producer_config())
        rng = random.Random(23)  # noqa: S311  (traffic, not secrets)
        started = time.monotonic()
        for n in range(events):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name, key, value = event_body(rng, users=users, user_prefix=prefix)
            while not invalid and b'"user_id": 42' in value:
                name, key, value = event_body(rng, users=users, user_prefix=prefix)
            producer.produce(topics[name], key=key, value=value, on_delivery=acknowledged)
            producer.poll(0)
            body = json.loads(value)
            user_id = body.get("user_id")
            if not isinstance(user_id, str):
                published["invalid"] += 1
            else:
                at = datetime.fromisoformat(body.get("occurred_at") or body["predicted_at"])
                published["last_seen"][user_id] = max(at, published["last_seen"].get(user_id, at))
                if body.get("event_type") == "checkout_completed":
                    published["orders"][user_id] += 1
            published["count"] += 1
        producer.flush(60)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return published, done


def drained(*, group: str, topics: dict[str, str], ends: dict[tuple[str, int], int] | None = None) -> bool:
    """Has the group committed every input partition up to its end? ``ends``: the end of each partition
    as the producer's acknowledgements gave it (the test broker's high watermark can lag behind: it
    reports the start of a partition's last batch)."""
    from confluent_kafka import Consumer as KafkaConsumer
    from confluent_kafka import TopicPartition

    from messaging.kafka import client_config

    client = KafkaConsumer({**client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = []
        for name in INPUTS:
            metadata = client.list_topics(topics[name], timeout=10).topics[topics[name]]
            partitions += [TopicPartition(topics[name], p) for p in metadata.partitions]
        for committed in client.committed(partitions, timeout=10):
            _low, high = client.get_watermark_offsets(committed, timeout=10)
            if ends is not None:
                high = max(high, ends.get((committed.topic, committed.partition), 0))
            if high > 0 and committed.offset < high:
                return False
        return True
    finally:
        client.close()


def check(*, published: dict[str, Any], prefix: str, topics: dict[str, str]) -> dict[str, Any]:
    from core.redis import redis_sync
    from delivery.event_handlers import dlq_read
    from interventions.models import Intervention
    from messaging.models import OutboxMessage
    from personalization.models import Profile

    profiles = {p.user_id: p for p in Profile.objects.filter(user_id__startswith=prefix)}
    last_seen = published["last_seen"]
    lost = sorted(u for u, at in last_seen.items() if u not in profiles or profiles[u].last_seen_at != at)
    orders_doubled = sorted(u for u, p in profiles.items() if p.orders_count != published["orders"].get(u, 0))

    interventions = Intervention.objects.filter(user_id__startswith=prefix)
    statuses = Counter(interventions.values_list("status", flat=True))
    decided = {str(pk) for pk in interventions.values_list("pk", flat=True)}
    outbox = Counter(
        str(payload.get("intervention_id"))
        for payload in OutboxMessage.objects.filter(topic=topics["intervention-events"]).values_list(
            "payload", flat=True
        )
        if payload.get("type") in ("intervention.created", "intervention.suppressed")
    )
    lifecycle_wrong = sorted(i for i in decided if outbox.get(i, 0) != 1)

    sends: dict[str, int] = defaultdict(int)
    for user_id in interventions.exclude(status=Intervention.Status.SUPPRESSED).values_list(
        "user_id", flat=True
    ):
        sends[user_id] += 1
    redis = redis_sync()
    counted: dict[str, int] = defaultdict(int)
    for key in redis.scan_iter(f"ie:budget:{prefix}*", count=1000):
        user_id = str(key).split(":")[2]
        counted[user_id] += int(redis.get(key) or 0)
    budget_doubled = sorted(u for u, n in counted.items() if n > sends.get(u, 0))
    under_counted = sum(max(0, sends[u] - counted.get(u, 0)) for u in sends)

    dead = len(dlq_read(timeout=15))
    return {
        "published": published["count"],
        "shoppers": len(last_seen),
        "interventions": dict(statuses),
        "lost": len(lost),
        "orders_counted_twice": len(orders_doubled),
        "lifecycle_rows_not_exactly_one": len(lifecycle_wrong),
        "budget_counted_twice": len(budget_doubled),
        "sends_not_counted": under_counted,
        "invalid_published": published["invalid"],
        "dead_letters": dead,
        "examples": {"lost": lost[:3], "orders": orders_doubled[:3], "lifecycle": lifecycle_wrong[:3]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos decisions", description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--keep", action="store_true", help="keep the drill's campaigns and decisions")
    args = parser.parse_args(argv)

    django_setup({"LOG_LEVEL": "WARNING"})
    from django.conf import settings

    from bench.decisions import campaigns_create, cleanup
    from delivery.selectors import campaign_cache
    from messaging.kafka import ensure_topics

    run = uuid.uuid4().hex[:8]
    topic_prefix = f"chaos-{run}."
    settings.KAFKA_TOPICS = {name: f"{topic_prefix}{name}" for name in settings.KAFKA_TOPICS}
    ensure_topics(partitions=3)
    campaigns_create(f"chaos-{run}-")
    campaign_cache.invalidate()
    group = f"chaos-{run}"
    log_path = Path(tempfile.mkdtemp(prefix="chaos-")) / "consumer.log"
    consumer = ConsumerProcess(
        env={
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "KAFKA_CONSUMER_GROUP": group,
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
        },
        log_path=log_path,
    )
    shopper_prefix = f"chaos-{run}-u-"
    kills = 0
    started = time.monotonic()
    try:
        consumer.start()
        published, done = publish(
            topics=settings.KAFKA_TOPICS,
            events=args.events,
            rate=args.rate,
            users=args.users,
            prefix=shopper_prefix,
        )
        next_kill = time.monotonic() + random.uniform(2.0, 4.0)  # noqa: S311
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            if kills < args.kills and time.monotonic() >= next_kill:
                consumer.kill9()
                kills += 1
                print(f"kill -9 #{kills} after {published['count']} events published", flush=True)
                consumer.start()
                next_kill = time.monotonic() + random.uniform(2.0, 5.0)  # noqa: S311
            elif (
                done.is_set()
                and kills >= args.kills
                and drained(group=group, topics=settings.KAFKA_TOPICS, ends=published["ends"])
            ):
                break
            time.sleep(0.5)
        consumer.stop(wait=30)
        summary = check(published=published, prefix=shopper_prefix, topics=settings.KAFKA_TOPICS)
        summary["kills"] = kills
        summary["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(summary), flush=True)
        ok = (
            kills == args.kills
            and summary["published"] == args.events
            and summary["lost"] == 0
            and summary["orders_counted_twice"] == 0
            and summary["lifecycle_rows_not_exactly_one"] == 0
            and summary["budget_counted_twice"] == 0
            and summary["dead_letters"] >= summary["invalid_published"]
        )
        print("PASS" if ok else f"FAIL (consumer log: {log_path})", flush=True)
        return 0 if ok else 1
    finally:
        consumer.kill9()
        if not args.keep:
            cleanup(f"chaos-{run}")  # its campaigns would otherwise stay active for the next run


if __name__ == "__main__":
    sys.exit(main())
