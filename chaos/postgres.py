"""Drill: PostgreSQL restarted twice (3 s into the stream, and 5 s after the first restart) while events
stream in, decisions are made, the outbox is relayed and messages are sent.

    python -m chaos postgres [--events 2000] [--rate 100] [--down 5]

A PostgreSQL of the drill's own (embedded, on a unix socket; ``stack.servers.EmbeddedPostgres``), stopped
once with ``pg_ctl stop -m fast`` and once with ``-m immediate`` (no checkpoint: the next start recovers
from the WAL, as after a crash), each time for ``--down`` seconds, then started again. Beside it, real
processes started once and never touched again: ``consume_events`` deciding the traffic of
``chaos.decisions``, ``relay_outbox``, a Celery worker sending to the provider stub, and daphne serving
``/health/ready``, polled with the METRICS_TOKEN; beat's two sweeps run in this process. Passes when:

* every process is still the one started at the beginning (none exited; nothing restarted them);
* ``/health/ready`` answered 503 naming the database during each outage and 200 after it;
* the consumer's accounting holds (``chaos.decisions.check``: nothing lost, nothing counted twice, one
  lifecycle row per intervention, every invalid event dead-lettered);
* every outbox row is marked published and is on its topic (0 missing);
* every delivery of a send channel ended (none left ``queued`` or ``sending``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from chaos.faults import say, topic_read_all


def health_poll(
    *, url: str, token: str, stop: threading.Event, seen: list[tuple[float, int, list[str]]]
) -> None:
    """``/health/ready`` every quarter second: (when, status code, failed components); code 0 when
    daphne did not answer at all."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    while not stop.wait(0.25):
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  (loopback)
                seen.append((time.monotonic(), response.status, []))
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            seen.append((time.monotonic(), exc.code, list(body.get("failed", []))))
        except OSError:
            seen.append((time.monotonic(), 0, []))


def sweep_until(stop: threading.Event) -> None:
    """Beat's sweeps, every half second, as beat would go on running them through an outage."""
    from django.db import DatabaseError, connection

    from chaos.sends import sweep

    while not stop.wait(0.5):
        try:
            sweep()
        except DatabaseError:
            connection.close()
    connection.close()


def until_answers(read: Any) -> Any:
    """``read()`` once this process' own connection works again."""
    from django.db import DatabaseError, connection

    while True:
        try:
            return read()
        except DatabaseError:
            connection.close()
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos postgres", description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=100, help="events/s published")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--down", type=float, default=5.0, help="seconds PostgreSQL stays stopped, each time")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    from stack.servers import EmbeddedPostgres

    work = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
    postgres = EmbeddedPostgres(data_dir=work / "postgres", durable=True, say=say)
    try:
        os.environ["DATABASE_URL"] = postgres.start()
        return drill(args, work=work, postgres=postgres)
    finally:
        postgres.stop()


def drill(args: argparse.Namespace, *, work: Path, postgres: Any) -> int:
    from chaos.sends import django_setup, provider_env, purge_queues, start_stub

    stub, stub_url = start_stub(delay=0.01)
    token = secrets.token_urlsafe(24)
    env = {
        **provider_env(stub_url),
        "DEBUG": "false",
        "METRICS_TOKEN": token,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    django_setup(env)  # the drill's database starts empty: migrated here
    # This process' own clients fail during the outages, as expected: not worth a line each.
    logging.getLogger("django.db.backends").setLevel(logging.CRITICAL)
    from django.conf import settings

    from bench.decisions import campaigns_create
    from bench.ws_common import free_port
    from chaos.decisions import check, drained, publish
    from chaos.worker import CeleryWorker, ConsumerProcess, DaphneProcess, RelayProcess
    from delivery.selectors import campaign_cache
    from interventions.models import Delivery
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
    process_env = {
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "KAFKA_CONSUMER_GROUP": group,
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
    }
    consumer = ConsumerProcess(env=process_env, log_path=work / "consumer.log")
    relay = RelayProcess(env=process_env, log_path=work / "relay.log")
    worker = CeleryWorker(env=process_env, log_path=work / "worker.log", concurrency=4)
    port = free_port()
    daphne = DaphneProcess(env=process_env, log_path=work / "daphne.log", port=port)
    processes: dict[str, Any] = {"consumer": consumer, "relay": relay, "worker": worker, "daphne": daphne}
    shopper_prefix = f"chaos-{run}-u-"
    outages: list[tuple[str, float, float]] = []  # (mode, stopped, started again)
    health: list[tuple[float, int, list[str]]] = []
    stop = threading.Event()
    started = time.monotonic()
    try:
        purge_queues()
        for process in processes.values():
            process.start()
        threading.Thread(
            target=health_poll,
            kwargs={
                "url": f"http://127.0.0.1:{port}/health/ready",
                "token": token,
                "stop": stop,
                "seen": health,
            },
            daemon=True,
        ).start()
        sweeper = threading.Thread(target=sweep_until, args=(stop,), daemon=True)
        sweeper.start()
        published, done = publish(
            topics=topics, events=args.events, rate=args.rate, users=args.users, prefix=shopper_prefix
        )
        # Mid-stream: the first outage 3 s into the stream, the second 5 s after the first ended.
        at = time.monotonic() + 3.0
        for mode in ("fast", "immediate"):
            time.sleep(max(0.0, at - time.monotonic()))
            down = time.monotonic()
            postgres.stop(modes=(mode,))
            say(f"postgres stopped ({mode}) at {down - started:.1f} s, {published['count']} events published")
            time.sleep(args.down)
            postgres.start()
            outages.append((mode, down, time.monotonic()))
            say(f"postgres back at {outages[-1][2] - started:.1f} s")
            at = time.monotonic() + 5.0

        def settled() -> bool:
            unpublished = OutboxMessage.objects.filter(published_at__isnull=True).exists()
            unsent = (
                Delivery.objects.exclude(channel="onsite").filter(status__in=("queued", "sending")).exists()
            )
            return not unpublished and not unsent

        deadline = started + args.timeout
        while time.monotonic() < deadline:
            if (
                done.is_set()
                and drained(group=group, topics=topics, ends=published["ends"])
                and until_answers(settled)
            ):
                break
            time.sleep(1.0)
        alive = {name: p.process is not None and p.process.poll() is None for name, p in processes.items()}
        for process in (consumer, relay, worker):
            process.stop(wait=30)
        stop.set()
        sweeper.join(30)

        summary = check(published=published, prefix=shopper_prefix, topics=topics)
        summary.pop("examples")
        outbox = dict(OutboxMessage.objects.values_list("payload__event_id", "published_at").iterator())
        on_topic = set()
        for name in set(OutboxMessage.objects.values_list("topic", flat=True)):
            for message in topic_read_all(name):
                on_topic.add(str(json.loads(message.value()).get("event_id")))
        deliveries = Counter(Delivery.objects.exclude(channel="onsite").values_list("status", flat=True))
        summary |= {
            "outages": [f"{mode} {back - down:.1f} s" for mode, down, back in outages],
            "health": health_summary(health, outages=outages),
            "processes_alive": sum(alive.values()),
            "outbox_rows": len(outbox),
            "outbox_unmarked": sum(1 for at in outbox.values() if at is None),
            "outbox_missing_on_topic": len(set(map(str, outbox)) - on_topic),
            "deliveries": dict(deliveries),
            "deliveries_unfinished": deliveries["queued"] + deliveries["sending"],
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(summary), flush=True)
        ok = (
            all(alive.values())
            and all(starts == 1 for starts in (consumer.starts, relay.starts, worker.starts))
            and summary["health"]["red_then_green"] == len(outages) == 2
            and summary["published"] == args.events
            and summary["lost"] == 0
            and summary["orders_counted_twice"] == 0
            and summary["lifecycle_rows_not_exactly_one"] == 0
            and summary["budget_counted_twice"] == 0
            and summary["dead_letters"] >= summary["invalid_published"]
            and summary["outbox_unmarked"] == 0
            and summary["outbox_missing_on_topic"] == 0
            and summary["deliveries_unfinished"] == 0
        )
        print("PASS" if ok else f"FAIL (logs in {work})", flush=True)
        return 0 if ok else 1
    finally:
        stop.set()
        for process in processes.values():
            process.kill9()
        stub.terminate()
        stub.wait(10)


def health_summary(
    health: list[tuple[float, int, list[str]]], *, outages: list[tuple[str, float, float]]
) -> dict[str, Any]:
    """For each outage: was readiness red naming the database while PostgreSQL was down, and green after
    it came back (and how long after)."""
    red_then_green = 0
    green_after: list[float] = []
    for _mode, down, back in outages:
        red = any(down <= at <= back and code == 503 and "database" in failed for at, code, failed in health)
        green = next((at for at, code, _ in health if at > back and code == 200), None)
        if red and green is not None:
            red_then_green += 1
            green_after.append(round(green - back, 1))
    return {"polls": len(health), "red_then_green": red_then_green, "green_after_s": green_after}


if __name__ == "__main__":
    sys.exit(main())
