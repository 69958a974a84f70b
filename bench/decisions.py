"""Benchmark: decisions per second for one consumer process, and event→commit latency at a steady rate.

    python -m bench.decisions [--events 30000] [--rate 500] [--seconds 20] [--users 20000] [--batch 500]
                              [--no-match 10000] [--bandit]

Runs against the PostgreSQL, Redis and Kafka of the environment (DATABASE_URL, REDIS_URL,
KAFKA_BOOTSTRAP_SERVERS), on fresh, uniquely named topics. It creates a realistic campaign set — 20 active
triggered campaigns on six triggers, with conditions, segments, frequency caps, cooldowns, holdouts,
several variants and four channels — then:

1. **Throughput**: publishes ``--events`` messages of a realistic shopper mix (page views, cart changes,
   predictions with scores, checkouts with orders, a few invalid ones), then times ONE consumer process
   (``EventConsumer``: consume → validate → DLQ → one transaction per batch → hand-off → store offsets)
   draining them. Reports events/s and decisions/s, the CPU per event of the consumer, of its PostgreSQL
   backend and of the broker (when it runs here), and the events/s those CPU costs allow on this
   machine's cores even with every wait overlapped (``machine_bound_events_per_second``).
   Then the raw floors under it, in the same run: a bare confluent-kafka consumer reading the same
   messages (``floors.bare_consumer``) and a bare ``COPY`` of the rows the phase wrote into tables made
   like theirs (``floors.bare_copy``); and ``--no-match`` events of a type no campaign listens to
   (validation and the profile update only, ``no_match``).
2. **Latency**: a separate producer process publishes at ``--rate`` events/s for ``--seconds``, each event
   stamped with its scheduled send time as ``occurred_at`` (open loop: no coordinated omission); the
   consumer reports, per event, the time from ``occurred_at`` to the commit of its batch. Reports
   p50/p95/p99/max, and p99.9 from a log-bucketed histogram (``ms``).

``--bandit`` turns on Thompson-sampling allocation for every campaign (allocations computed and loaded
before the run, as the beat task and the consumers' cache do); compare runs with and without it.

The campaigns and everything decided are deleted at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.harness import Histogram

TRIGGER_MIX = [
    ("page_viewed", 0.35),
    ("cart_item_added", 0.25),
    ("prediction", 0.22),
    ("checkout_started", 0.06),
    ("cart_abandoned", 0.05),
    ("checkout_completed", 0.05),
    ("invalid", 0.02),
]


def django_setup(*, migrate: bool = True) -> None:
    from chaos.sends import django_setup as setup

    os.environ.setdefault("LOG_LEVEL", "ERROR")
    # As deployed: DEBUG keeps every SQL statement (with its JSON parameter) in connection.queries.
    os.environ.setdefault("DEBUG", "false")
    setup({}, migrate=migrate)


def campaigns_create(prefix: str) -> list[Any]:
    """20 active triggered campaigns, with segments, caps, holdouts and 2-3 variants over 4 channels."""
    from campaigns.models import Campaign, Template, TemplateLocalization, Variant
    from personalization.models import Segment

    def template(channel: str, n: int) -> Template:
        obj = Template.objects.create(
            name=f"{prefix}tpl-{channel}-{n}",
            channel=channel,
            onsite_kind="modal" if channel == "onsite" else "",
        )
        TemplateLocalization.objects.create(
            template=obj,
            locale="en",
            subject="{{ profile.first_name|default('Hi') }}, your {{ cart.item_count }} items are waiting",
            body_text="Total {{ cart.total|money(cart.currency) }}. Use {{ discount_code }} for 10% off.",
            body_html="<p>Total {{ cart.total|money(cart.currency) }}</p>" if channel == "email" else "",
            cta_label="Back to cart",
            cta_url="https://shop.example.com/cart",
            discount_code="SAVE10",
        )
        return obj

    segments = [
        Segment.objects.create(name=f"{prefix}seg-gold", rules='attributes.tier == "gold"'),
        Segment.objects.create(name=f"{prefix}seg-big-cart", rules="cart.total >= 80"),
        Segment.objects.create(name=f"{prefix}seg-new", rules="orders_count == 0"),
        Segment.objects.create(
            name=f"{prefix}seg-gold-big", rules='cart.total >= 50 and attributes.tier in ["gold", "silver"]'
        ),
    ]
    specs: list[dict[str, Any]] = []
    for n in range(8):
        specs.append(
            {
                "trigger": "prediction.cart_abandonment",
                "conditions": f"score >= {0.5 + n * 0.05:.2f}",
                "segment": segments[n % 4] if n % 2 == 0 else None,
            }
        )
    for n in range(4):
        specs.append(
            {"trigger": "cart_item_added", "conditions": f"cart.total >= {40 + 30 * n}", "segment": None}
        )
    for n in range(3):
        specs.append({"trigger": "checkout_started", "conditions": "", "segment": segments[n]})
    for n in range(3):
        specs.append(
            {"trigger": "cart_abandoned", "conditions": "cart.item_count >= 1", "segment": segments[3 - n]}
        )
    for n in range(2):
        specs.append({"trigger": "page_viewed", "conditions": "cart.total >= 150", "segment": segments[n]})
    channel_sets = [["onsite", "email"], ["email", "sms"], ["onsite", "push", "email"], ["email"], ["onsite"]]
    strategies = ["first_available", "optimized", "fixed"]
    campaigns = []
    for n, spec in enumerate(specs):
        channels = channel_sets[n % len(channel_sets)]
        campaign = Campaign.objects.create(
            name=f"{prefix}campaign-{n}",
            status=Campaign.Status.ACTIVE,
            kind=Campaign.Kind.TRIGGERED,
            trigger=spec["trigger"],
            conditions=spec["conditions"],
            segment=spec["segment"],
            channels=channels,
            channel_strategy=strategies[n % 3],
            priority=n % 5,
            frequency_cap_count=3,
            frequency_cap_window_seconds=86400,
            cooldown_seconds=300 if n % 2 else 0,
            holdout_percent=10,
            exit_events=["checkout_completed"],
            delay_seconds=0,
        )
        for v in range(2 + n % 2):
            Variant.objects.create(
                campaign=campaign,
                name=f"V{v}",
                weight=1,
                **{f"{channel}_template": template(channel, n * 10 + v) for channel in channels},
            )
        campaigns.append(campaign)
    return campaigns


def event_body(
    rng: random.Random,
    *,
    users: int,
    now: str | None = None,
    user_prefix: str = "bench-u-",
    kind: str | None = None,
) -> tuple[str, bytes, bytes]:
    """(contract topic name, key, value) of one realistic event (of ``kind``, or drawn from the mix)."""
    user_id = f"{user_prefix}{rng.randrange(users)}"
    now = now or datetime.now(UTC).isoformat()
    kind = kind or rng.choices([k for k, _ in TRIGGER_MIX], weights=[w for _, w in TRIGGER_MIX])[0]
    key = user_id.encode()
    if kind == "invalid":
        return "cart-events-enriched", key, b'{"event_type": "cart_item_added", "user_id": 42}'
    if kind == "prediction":
        body: dict[str, Any] = {
            "prediction_id": str(uuid.uuid4()),
            "model": "cart_abandonment",
            "model_version": "2026-11-01",
            "user_id": user_id,
            "session_id": f"s-{user_id}",
            "cart_id": f"c-{user_id}",
            "score": round(rng.random(), 3),
            "predicted_at": now,
            "explanations": {"idle_seconds": rng.randrange(600)},
        }
        return "prediction-results", key, json.dumps(body).encode()
    count = rng.randrange(1, 5)
    items: list[dict[str, Any]] = [
        {
            "sku": f"SKU-{rng.randrange(500)}",
            "name": "Trail shoe",
            "price": round(rng.uniform(5, 120), 2),
            "quantity": 1,
            "image_url": "https://shop.example.com/i.jpg",
        }
        for _ in range(count)
    ]
    total = round(sum(float(i["price"]) for i in items), 2)
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": kind,
        "occurred_at": now,
        "user_id": user_id,
        "session_id": f"s-{user_id}",
        "cart_id": f"c-{user_id}",
        "cart": {"currency": "EUR", "total": total, "item_count": count, "items": items},
        "user": {
            "email": f"{user_id}@example.com",
            "first_name": "Ada",
            "locale": "en",
            "timezone": "Europe/Paris",
            "attributes": {"tier": rng.choice(["gold", "silver", "bronze"])},
        },
    }
    if kind == "checkout_completed":
        body["order"] = {"order_id": str(uuid.uuid4()), "revenue": total, "currency": "EUR"}
    return "cart-events-enriched", key, json.dumps(body).encode()


def publish(topics: dict[str, str], count: int, users: int, seed: int = 7, kind: str | None = None) -> None:
    from confluent_kafka import Producer

    from messaging.kafka import producer_config

    producer = Producer(producer_config(**{"linger.ms": 20, "queue.buffering.max.messages": 1_000_000}))
    rng = random.Random(seed)
    for _ in range(count):
        name, key, value = event_body(rng, users=users, kind=kind)
        while True:
            try:
                producer.produce(topics[name], key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def steady_publisher(env_topics: dict[str, str], rate: int, seconds: float, users: int) -> None:
    """Runs in its own process: publishes ``rate`` events/s, stamping occurred_at at send time."""
    django_setup(migrate=False)
    from confluent_kafka import Producer

    from messaging.kafka import producer_config

    producer = Producer(producer_config(**{"linger.ms": 1}))
    # Connect, get the topics' metadata and the idempotent producer id before the clock starts: the
    # first events would otherwise wait ~1 s in the client's buffer, stamped as if sent.
    for name in set(env_topics.values()):
        producer.list_topics(name, timeout=10)
    producer.flush(10)
    rng = random.Random(11)
    start = time.monotonic()
    wall_start = time.time()
    sent = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        while sent < due:
            # Stamped with its scheduled send time (open loop): a publisher held up charges the delay to
            # the events it held, as a shop's traffic would not have waited.
            scheduled = datetime.fromtimestamp(wall_start + sent / rate, UTC).isoformat()
            name, key, value = event_body(rng, users=users, now=scheduled)
            producer.produce(env_topics[name], key=key, value=value)
            sent += 1
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    from bench.ws_common import processes_cpu
    from campaigns.selectors import campaigns_active_triggered

    prefix = f"h5bench-{uuid.uuid4().hex[:6]}."
    settings.KAFKA_TOPICS = {name: f"{prefix}{name}" for name in settings.KAFKA_TOPICS}
    from delivery.management.commands.consume_events import EventConsumer
    from delivery.selectors import campaign_cache
    from interventions.models import Intervention
    from messaging.kafka import ensure_topics

    ensure_topics(partitions=args.partitions)
    cleanup("h5bench-none")  # a fresh daily budget for the bench shoppers
    vacuum()
    campaigns = campaigns_create(prefix)
    if args.bandit:
        from campaigns.models import Campaign
        from delivery.allocation import allocations_refresh, learned_cache

        Campaign.objects.filter(pk__in=[c.pk for c in campaigns]).update(use_bandit=True)
        allocations_refresh()
        learned_cache.refresh()
    campaign_cache.invalidate()
    group = f"{prefix}group"
    result: dict[str, Any] = {
        "campaigns": len(campaigns),
        "partitions": args.partitions,
        "batch": args.batch,
        "bandit": args.bandit,
    }
    # The consumer decides for every active campaign of the database, not only the bench's: say so.
    others = [c.name for c in campaigns_active_triggered() if not c.name.startswith(prefix)]
    result["other_active_campaigns"] = len(others)
    if others:
        print(f"warning: other active campaigns take part: {', '.join(others)}", file=sys.stderr)

    # --- 1. throughput --------------------------------------------------------------------------------
    print(f"publishing {args.events} events…", file=sys.stderr)
    publish(settings.KAFKA_TOPICS, args.events, args.users)
    # As the command runs it (the collector between batches), unless --gc-default.
    consumer = EventConsumer(
        batch_size=args.batch,
        poll_timeout=args.poll,
        group_id=group,
        collect_between_batches=not args.gc_default,
    )
    consumer.setup()
    assert consumer.consumer is not None
    handled = decided = 0
    started: float | None = None
    cpu_started = time.process_time()
    # The other processes that work for each event on this machine: the consumer's PostgreSQL backend and
    # the broker (when it is a local one).
    servers = server_pids(settings.KAFKA_BOOTSTRAP_SERVERS)
    servers_started = processes_cpu(servers)
    batches = 0
    deadline = time.monotonic() + 600
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    while handled < args.events and time.monotonic() < deadline:
        batch = consumer.next_batch()
        if not batch:
            continue
        if started is None:
            started = time.perf_counter()
            cpu_started = time.process_time()
            servers_started = processes_cpu(servers)
        outcome = consumer.process(batch)
        if outcome is None:
            continue
        batches += 1
        handled += outcome.valid + outcome.dead
        if outcome.outcome is not None:
            decided += len(outcome.outcome.created) + sum(outcome.outcome.suppressed.values())
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - cpu_started
    servers_used = {
        name: used - servers_started[name]
        for name, used in processes_cpu(servers).items()
        if name in servers_started
    }
    per_event = {"consumer": cpu, **servers_used}
    ms_per_event = {name: round(1000 * used / max(1, handled), 3) for name, used in per_event.items()}
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    result["throughput"] = {
        "events": handled,
        "seconds": round(elapsed, 2),
        "events_per_second": round(handled / elapsed) if elapsed else None,
        # CPU seconds of this process (all its threads): what the figure would be on an idle core.
        "cpu_seconds": round(cpu, 2),
        "events_per_cpu_second": round(handled / cpu) if cpu else None,
        # CPU per event of every process that works for it here, and what that allows on this machine's
        # cores with the consumer and the servers sharing them.
        "cpu_ms_per_event": ms_per_event,
        "machine_bound_events_per_second": (
            round((os.cpu_count() or 1) * handled / sum(per_event.values())) if handled else None
        ),
        "decisions": decided,
        "decisions_per_second": round(decided / elapsed) if elapsed else None,
        "batches": batches,
        "interventions_sent": Intervention.objects.filter(
            campaign__in=campaigns, status__in=["pending", "delivered"]
        ).count(),
    }
    print(json.dumps(result["throughput"]), file=sys.stderr)

    # --- 1b. the raw floors under it: the same messages, the same rows --------------------------------
    result["floors"] = {
        "bare_consumer": bare_consume(
            [settings.KAFKA_TOPICS[name] for name in EVENT_TOPICS], count=handled, group=f"{prefix}bare"
        ),
        "bare_copy": bare_copy(prefix=prefix, campaigns=campaigns, events=handled),
    }
    print(json.dumps(result["floors"]), file=sys.stderr)

    # --- 1c. events that match no campaign (validation and the profile update only) --------------------
    if args.no_match:
        publish(settings.KAFKA_TOPICS, args.no_match, args.users, seed=13, kind=NO_MATCH_KIND)
        result["no_match"] = drain(consumer, count=args.no_match)
        print(json.dumps(result["no_match"]), file=sys.stderr)

    # --- 2. latency at a steady rate ------------------------------------------------------------------
    from delivery import services

    latencies: list[float] = []
    engine: list[float] = []
    original = services._observe

    def observe(*, events: Any, outcome: Any) -> None:
        committed = outcome.committed_at
        latencies.extend((committed - e.occurred_at).total_seconds() for e in events)
        original(events=events, outcome=outcome)

    services._observe = observe
    # Join the group before traffic starts (a join takes seconds on this broker): otherwise the latency
    # phase measures the backlog of the join, not the steady state.
    join_deadline = time.monotonic() + 30
    while not consumer.consumer.assignment() and time.monotonic() < join_deadline:
        warmup = consumer.next_batch()
        if warmup:
            consumer.process(warmup)
    expected = int(args.rate * args.seconds)
    publisher = multiprocessing.get_context("spawn").Process(
        target=steady_publisher, args=(dict(settings.KAFKA_TOPICS), args.rate, args.seconds, args.users)
    )
    publisher.start()
    deadline = time.monotonic() + args.seconds + 60
    seen = 0
    while seen < expected * 0.98 and time.monotonic() < deadline:
        batch = consumer.next_batch()
        if batch:
            received = datetime.now(UTC)
            outcome = consumer.process(batch)
            if outcome is not None:
                seen += outcome.valid + outcome.dead
                if outcome.outcome is not None and outcome.outcome.committed_at is not None:
                    # Inside the engine only: from the batch leaving Kafka to its commit.
                    spent = (outcome.outcome.committed_at - received).total_seconds()
                    engine.extend([spent] * outcome.valid)
        if not publisher.is_alive() and not batch and seen >= expected * 0.9:
            break
    publisher.join(30)
    consumer.teardown()
    services._observe = original
    if latencies:
        histogram = Histogram()
        histogram.record_many(1000 * latency for latency in latencies)
        result["latency"] = {
            "rate": args.rate,
            "events": len(latencies),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
            "p99_ms": round(1000 * percentile(latencies, 0.99), 1),
            "max_ms": round(1000 * max(latencies), 1),
            "ms": histogram.summary(),
            "in_engine_p50_ms": round(1000 * statistics.median(engine), 1) if engine else None,
            "in_engine_p99_ms": round(1000 * percentile(engine, 0.99), 1) if engine else None,
        }
        print(json.dumps(result["latency"]), file=sys.stderr)

    if not args.keep:
        cleanup(prefix)
    return result


# The topics the events of this benchmark are published to, and an event type no campaign of it listens to.
EVENT_TOPICS = ("cart-events-enriched", "prediction-results")
NO_MATCH_KIND = "cart_item_removed"


def drain(consumer: Any, *, count: int) -> dict[str, Any]:
    """Times ``consumer`` (joined, idle) deciding the next ``count`` events: wall and CPU."""
    handled = 0
    started: float | None = None
    cpu_started = time.process_time()
    deadline = time.monotonic() + 300
    while handled < count and time.monotonic() < deadline:
        batch = consumer.next_batch()
        if not batch:
            continue
        if started is None:
            started, cpu_started = time.perf_counter(), time.process_time()
        outcome = consumer.process(batch)
        if outcome is not None:
            handled += outcome.valid + outcome.dead
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - cpu_started
    return {
        "events": handled,
        "seconds": round(elapsed, 2),
        "events_per_second": round(handled / elapsed) if elapsed else None,
        "events_per_cpu_second": round(handled / cpu) if cpu else None,
    }


def bare_consume(topics: list[str], *, count: int, group: str) -> dict[str, Any]:
    """The floor under the consumer: a bare confluent-kafka consumer (the engine's settings, batches of
    500) reading the same ``count`` messages from the start, doing nothing with them."""
    from confluent_kafka import Consumer

    from messaging.kafka import consumer_config

    consumer = Consumer(consumer_config(group_id=group))
    consumer.subscribe(topics)
    read = 0
    started: float | None = None
    cpu_started = time.process_time()
    deadline = time.monotonic() + 120
    while read < count and time.monotonic() < deadline:
        messages = consumer.consume(500, 0.05)
        if messages and started is None:
            started, cpu_started = time.perf_counter(), time.process_time()
        read += sum(1 for message in messages if message.error() is None)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - cpu_started
    consumer.close()
    return {
        "events": read,
        "seconds": round(elapsed, 3),
        "events_per_second": round(read / elapsed) if elapsed else None,
        "events_per_cpu_second": round(read / cpu) if cpu else None,
    }


def bare_copy(*, prefix: str, campaigns: list[Any], events: int) -> dict[str, Any]:
    """The floor under the writes: the rows the throughput phase wrote (interventions, deliveries, outbox
    messages) copied out, then ``COPY``-ed in one transaction into tables made ``LIKE`` theirs (indexes
    and defaults included, logged as theirs are), dropped afterwards."""
    from django.db import connection, transaction

    from interventions.models import Delivery, Intervention
    from messaging.models import OutboxMessage

    ids = [campaign.pk for campaign in campaigns]
    sources = {
        Intervention._meta.db_table: ("campaign_id = ANY(%s)", ids),
        Delivery._meta.db_table: (
            f"intervention_id IN (SELECT id FROM {Intervention._meta.db_table} WHERE campaign_id = ANY(%s))",  # noqa: S608
            ids,
        ),
        OutboxMessage._meta.db_table: ("topic LIKE %s", f"{prefix}%"),
    }
    rows: dict[str, int] = {}
    data: dict[str, bytes] = {}
    with connection.cursor() as cursor:
        raw = cursor.cursor
        for table, (where, value) in sources.items():
            query = raw.mogrify(f"SELECT * FROM {table} WHERE {where}", [value])  # noqa: S608
            with raw.copy(f"COPY ({query}) TO STDOUT") as copy:
                data[table] = b"".join(bytes(chunk) for chunk in copy)
            rows[table] = data[table].count(b"\n")
            cursor.execute(f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING ALL)")
        try:
            started = time.perf_counter()
            with transaction.atomic():
                for table, payload in data.items():
                    with raw.copy(f"COPY bench_copy_{table} FROM STDIN") as copy:
                        copy.write(payload)
            elapsed = time.perf_counter() - started
        finally:
            for table in data:
                cursor.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
    return {
        "rows": rows,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed) if elapsed else None,
    }


def server_pids(kafka_bootstrap: str) -> dict[str, int]:
    """The pids of this process's PostgreSQL backend and, if it runs here, the Kafka broker."""
    from django.db import connection

    from bench.ws_common import listening_pid

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pids = {"postgres_backend": int(cursor.fetchone()[0])}
    broker = listening_pid(kafka_bootstrap)
    if broker is not None:
        pids["broker"] = broker
    return pids


def cleanup(prefix: str) -> None:
    from campaigns.models import Campaign, Template, Variant
    from interventions.models import Intervention
    from messaging.models import OutboxMessage
    from personalization.models import Segment
    from tracking.models import Conversion

    campaigns = Campaign.objects.filter(name__startswith=prefix)
    Conversion.objects.filter(campaign__in=campaigns).delete()
    Conversion.objects.filter(user_id__startswith="bench-u-").delete()
    Intervention.objects.filter(campaign__in=campaigns).delete()
    Variant.objects.filter(campaign__in=campaigns).delete()
    campaigns.delete()
    Template.objects.filter(name__startswith=prefix).delete()
    Segment.objects.filter(name__startswith=prefix).delete()
    OutboxMessage.objects.filter(topic__startswith=prefix).delete()
    from core.redis import redis_sync

    redis = redis_sync()
    for key in redis.scan_iter(match="ie:budget:bench-u-*", count=1000):
        redis.delete(key)


def vacuum() -> None:
    """VACUUM ANALYZE the tables the decision path reads and writes, as autovacuum keeps them in
    production: a development server may run without it, and every run of this bench leaves tens of
    thousands of dead rows behind (its clean-up) and statistics the planner would trust."""
    from django.db import connection

    from campaigns.models import Campaign
    from interventions.models import Delivery, Intervention
    from messaging.models import OutboxMessage
    from personalization.models import Profile
    from tracking.models import Conversion

    with connection.cursor() as cursor:
        for model in (Campaign, Intervention, Delivery, OutboxMessage, Profile, Conversion):
            cursor.execute(f'VACUUM ANALYZE "{model._meta.db_table}"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decisions", description=__doc__)
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--poll", type=float, default=0.05, help="longest wait for a batch's first message, as the command's"
    )
    parser.add_argument(
        "--gc-default", action="store_true", help="Python's default collector instead of the command's"
    )
    parser.add_argument(
        "--no-match", type=int, default=10000, help="events no campaign matches, timed after the mix; 0: none"
    )
    parser.add_argument("--bandit", action="store_true", help="every campaign allocates by Thompson sampling")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", default="", help="write a cProfile of the throughput phase here")
    args = parser.parse_args(argv)
    django_setup()
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
