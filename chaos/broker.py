"""Drill: the Kafka broker down for a minute while ~1,000 decisions are made, and the outbox relay killed
with SIGKILL again and again, between publishing a batch and marking it published.

    python -m chaos broker [--outage 60] [--events 3000] [--rate 60] [--relay-kills 12]

A broker of the drill's own (tansu, behind a TCP proxy the drill cuts), a real ``consume_events`` deciding
a realistic stream (``chaos.decisions``' publisher), a real ``relay_outbox`` killed at random moments, and
now and then a decision batch rolled back in this process (its outbox rows never committed). Once the
consumer has committed every offset and the outbox is empty, ``intervention-events`` is read back whole.
Passes when, after de-duplication by ``event_id``:

* every outbox row is on the topic (0 missing), every message on it is an outbox row (0 foreign), and
  nothing of a rolled-back batch is there;
* a duplicate is only ever the same message again (same ``event_id``, same body): a re-publication after
  a kill, which consumers drop by ``event_id`` (SPEC §3.4);
* the consumer's own accounting holds (``chaos.decisions.check``: nothing lost, nothing counted twice).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from chaos.faults import broker_behind_proxy, say, topic_read_all


def rolled_back_batch(*, user_prefix: str, size: int) -> list[str]:
    """Decide ``size`` sure predictions in a transaction that then fails; returns the ``event_id`` of
    every outbox row it had written."""
    from django.db import transaction
    from django.utils import timezone

    from delivery.events import parse_prediction
    from delivery.services import decisions_process_batch
    from messaging.models import OutboxMessage

    class Abandon(Exception):
        pass

    events = [
        parse_prediction(
            json.dumps(
                {
                    "prediction_id": f"{user_prefix}{uuid.uuid4().hex}",
                    "model": "cart_abandonment",
                    "user_id": f"{user_prefix}{n}",
                    "score": 0.99,
                    "predicted_at": timezone.now().isoformat(),
                }
            ).encode()
        )
        for n in range(size)
    ]
    written: list[str] = []
    try:
        with transaction.atomic():
            last = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0
            decisions_process_batch(events=events)
            written = [
                str(p.get("event_id"))
                for p in OutboxMessage.objects.filter(
                    id__gt=last, payload__user_id__startswith=user_prefix
                ).values_list("payload", flat=True)
            ]
            raise Abandon
    except Abandon:
        pass
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos broker", description=__doc__)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the broker is down")
    parser.add_argument("--events", type=int, default=700, help="about 1,000 decisions with 20 campaigns")
    parser.add_argument("--rate", type=int, default=1000, help="events/s published")
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--relay-kills", type=int, default=16)
    parser.add_argument("--rollbacks", type=int, default=5, help="decision batches rolled back")
    parser.add_argument("--timeout", type=float, default=480.0)
    args = parser.parse_args(argv)

    import os

    work = Path(tempfile.mkdtemp(prefix="chaos-broker-"))
    with broker_behind_proxy(work / "kafka") as (bootstrap, proxy):
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        return drill(args, work=work, proxy=proxy)


def drill(args: argparse.Namespace, *, work: Path, proxy: Any) -> int:
    from chaos.sends import django_setup

    django_setup({"LOG_LEVEL": "WARNING", "DEBUG": "false"})
    # This process' own clients fail to connect for the whole outage, as expected: not worth a line each.
    logging.getLogger("kafka.librdkafka").setLevel(logging.CRITICAL)
    from django.conf import settings

    from bench.decisions import campaigns_create, cleanup
    from chaos.decisions import check, drained, publish
    from chaos.worker import ConsumerProcess, RelayProcess
    from delivery.selectors import campaign_cache
    from messaging.kafka import ensure_topics
    from messaging.models import OutboxMessage

    run = uuid.uuid4().hex[:8]
    topic_prefix = f"chaos-{run}."
    settings.KAFKA_TOPICS = {name: f"{topic_prefix}{name}" for name in settings.KAFKA_TOPICS}
    topics = settings.KAFKA_TOPICS
    ensure_topics(partitions=3)
    campaigns_create(f"chaos-{run}-")
    campaign_cache.invalidate()
    group = f"chaos-{run}"
    env = {"KAFKA_TOPIC_PREFIX": topic_prefix, "KAFKA_CONSUMER_GROUP": group, "LOG_LEVEL": "WARNING"}
    # Small batches: deciding the stream takes seconds, long enough for the broker to go down meanwhile.
    consumer = ConsumerProcess(env=env, log_path=work / "consumer.log", options=("--batch-size", "5"))
    relay = RelayProcess(env=env, log_path=work / "relay.log")
    shopper_prefix = f"chaos-{run}-u-"
    rollback_prefix = f"chaos-{run}-rb-"
    rolled_back: list[str] = []
    outage: dict[str, float] = {}
    started = time.monotonic()
    intervention_topic = topics["intervention-events"]

    def unpublished() -> int:
        return OutboxMessage.objects.filter(topic=intervention_topic, published_at__isnull=True).count()

    def marked_count() -> int:
        return OutboxMessage.objects.filter(topic=intervention_topic, published_at__isnull=False).count()

    try:
        # The stream is on the broker before the consumer starts: it fetches it in one go, then decides it
        # while the broker is down, so the outbox fills up behind a relay that cannot publish.
        published, done = publish(
            topics=topics,
            events=args.events,
            rate=args.rate,
            users=args.users,
            prefix=shopper_prefix,
            # A dead letter cannot be published while the broker is down: its batch would wait for it
            # (decided, but not acknowledged), and the consumer with it. The fuzz drill covers the DLQ.
            invalid=False,
        )
        done.wait(120)
        consumer.start()
        relay.start()
        while not OutboxMessage.objects.filter(topic=intervention_topic).exists():
            time.sleep(0.02)
        outage["started"] = time.monotonic() - started
        proxy.cut()
        say(f"broker down at {outage['started']:.1f} s for {args.outage:.0f} s")
        kills = kills_draining = rollbacks = 0
        next_kill = time.monotonic() + random.uniform(0.5, 3.0)  # noqa: S311
        next_rollback = time.monotonic() + 1.0
        marked_at_restart = 0
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            down = "ended" not in outage
            if down and now - started >= outage["started"] + args.outage:
                outage["backlog_at_end"] = unpublished()
                proxy.restore()
                outage["ended"] = now - started
                say(f"broker back at {outage['ended']:.1f} s; {outage['backlog_at_end']} rows waiting")
                next_kill = 0.0
                continue
            backlog = 0 if down else unpublished()
            # Half the kills while the broker is down, the rest while the relay drains the backlog.
            if down and kills < args.relay_kills // 2 and now >= next_kill:
                relay.kill9()
                kills += 1
                relay.start()
                next_kill = now + random.uniform(1.0, 5.0)  # noqa: S311
            elif not down and backlog and kills < args.relay_kills:
                # Draining: once the restarted relay is publishing again, kill it a moment later, in
                # the middle of a batch: published (or being published), not yet marked.
                marked = marked_count()
                if marked > marked_at_restart and not next_kill:
                    next_kill = now + random.uniform(0.0, 0.3)  # noqa: S311
                if next_kill and now >= next_kill:
                    relay.kill9()
                    kills += 1
                    kills_draining += 1
                    marked_at_restart = marked_count()
                    relay.start()
                    next_kill = 0.0
            if rollbacks < args.rollbacks and now >= next_rollback:
                rolled_back += rolled_back_batch(user_prefix=f"{rollback_prefix}{rollbacks}-", size=20)
                rollbacks += 1
                next_rollback = now + random.uniform(2.0, 6.0)  # noqa: S311
            if not down and backlog == 0 and drained(group=group, topics=topics, ends=published["ends"]):
                break
            time.sleep(0.1)
        consumer.stop(wait=30)
        relay.stop(wait=30)
        summary = accounting(topic=intervention_topic, rolled_back=rolled_back)
        summary.update(
            {
                "decisions": check_decisions(topic=intervention_topic),
                "outage_seconds": round(outage.get("ended", 0) - outage.get("started", 0), 1),
                "backlog_at_outage_end": outage.get("backlog_at_end"),
                "relay_kills": kills,
                "relay_kills_while_draining": kills_draining,
                "rollback_batches": rollbacks,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
        consumer_side = check(published=published, prefix=shopper_prefix, topics=topics)
        for name in ("published", "lost", "orders_counted_twice", "lifecycle_rows_not_exactly_one"):
            summary[f"consumer_{name}"] = consumer_side[name]
        print(json.dumps(summary), flush=True)
        ok = (
            summary["missing"] == 0
            and summary["foreign"] == 0
            and summary["rolled_back_on_topic"] == 0
            and summary["duplicates_that_differ"] == 0
            and summary["unpublished_rows"] == 0
            and kills_draining > 0
            and summary["rolled_back_rows"] > 0
            and summary["outage_seconds"] >= args.outage
            and consumer_side["published"] == args.events
            and consumer_side["lost"] == 0
            and consumer_side["orders_counted_twice"] == 0
            and consumer_side["lifecycle_rows_not_exactly_one"] == 0
        )
        print("PASS" if ok else f"FAIL (logs in {work})", flush=True)
        return 0 if ok else 1
    finally:
        consumer.kill9()
        relay.kill9()
        cleanup(f"chaos-{run}")


def check_decisions(*, topic: str) -> int:
    from messaging.models import OutboxMessage

    return OutboxMessage.objects.filter(
        topic=topic, payload__type__in=["intervention.created", "intervention.suppressed"]
    ).count()


def accounting(*, topic: str, rolled_back: list[str]) -> dict[str, Any]:
    """The topic against the outbox: by event_id, what is missing, foreign, duplicated."""
    from messaging.models import OutboxMessage

    rows = {
        str(p["event_id"]): p
        for p in OutboxMessage.objects.filter(topic=topic).values_list("payload", flat=True)
    }
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in topic_read_all(topic):
        body = json.loads(message.value())
        copies[str(body.get("event_id"))].append(body)
    counts = Counter({event_id: len(bodies) for event_id, bodies in copies.items()})
    return {
        "outbox_rows": len(rows),
        "on_topic": sum(counts.values()),
        "distinct_event_ids": len(counts),
        "duplicates": sum(n - 1 for n in counts.values()),
        "duplicates_that_differ": sum(
            1
            for event_id, bodies in copies.items()
            if any(b != rows.get(event_id, bodies[0]) for b in bodies)
        ),
        "missing": len(set(rows) - set(copies)),
        "foreign": len(set(copies) - set(rows)),
        "rolled_back_rows": len(rolled_back),
        "rolled_back_on_topic": len(set(rolled_back) & set(copies)),
        "unpublished_rows": OutboxMessage.objects.filter(topic=topic, published_at__isnull=True).count(),
    }


if __name__ == "__main__":
    sys.exit(main())
