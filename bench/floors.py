"""The raw floors: what the component under each benchmark does with none of our code on top.

    python -m bench.floors kafka-latency [--rate 500] [--count 2000]
    python -m bench.floors redis-socket [--sockets 2000] [--rate 500] [--count 2000]
    python -m bench.floors ws-push [--sockets 1000] [--frames 100000]
    python -m bench.floors ws-idle [--connections 10000]
    python -m bench.floors celery-noop [--tasks 10000] [--workers 2] [--concurrency 8]
    python -m bench.floors keyset [--rows 200000] [--page 1000]

Each prints one JSON object. The WebSocket floors run a bare ``websockets`` server (``serve``, its own
process, as daphne is) and the same aiohttp client as the gateway's benchmarks; latencies are open-loop,
from each message's scheduled send time (bench/harness.py). The decision path's floors (a bare consumer of
the same topics, a bare ``COPY`` of the same rows) live in bench/decisions.py, the report's (a bare
``count(*)`` over the same rows) in bench/reports.py, the ingest's (a bare ASGI handler) in
bench/ingest.py: each needs the data its benchmark made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from bench.harness import Histogram, aschedule, schedule
from bench.ws_common import ROOT, cpu_seconds, free_port, raise_open_files, rss_mib

FRAME_BODY = "x" * 300  # the size of the gateway benchmarks' frames (a rendered intervention)


# --- the bare WebSocket server ---------------------------------------------------------------------------


async def _serve(port: int, redis_channel: str) -> None:
    """Accepts sockets at ``/ws?i=<index>``. A text message ``push <n>`` from any socket makes it send ``n``
    frames, each to a random socket; with ``redis_channel``, every message published there is written to
    the socket its JSON ``i`` names."""
    from websockets.asyncio.server import ServerConnection, serve

    logging.getLogger("websockets").setLevel(logging.WARNING)  # a line per connection skews the figures
    sockets: dict[int, ServerConnection] = {}
    rng = random.Random(7)

    async def handler(ws: ServerConnection) -> None:
        query = ws.request.path.partition("?")[2] if ws.request else ""
        index = int(dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("i", "-1"))
        sockets[index] = ws
        try:
            async for message in ws:
                if isinstance(message, str) and message.startswith("push "):
                    targets = list(sockets.values())
                    for n in range(int(message.split()[1])):
                        await rng.choice(targets).send(
                            json.dumps({"type": "bench", "n": n, "body": FRAME_BODY})
                        )
        finally:
            sockets.pop(index, None)

    async def forward() -> None:
        import orjson

        from core.redis import redis_async

        pubsub = redis_async().pubsub()
        await pubsub.subscribe(redis_channel)
        print("ready", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                target = sockets.get(int(orjson.loads(message["data"])["i"]))
                if target is not None:
                    await target.send(message["data"])

    async with serve(handler, "127.0.0.1", port, max_size=None, ping_interval=None, compression=None):
        if redis_channel:
            await forward()  # runs until the process is stopped
        print("ready", flush=True)
        await asyncio.Future()


@contextmanager
def bare_server(*, redis_channel: str = "") -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.floors",
            "serve",
            "--port",
            str(port),
            "--redis-channel",
            redis_channel,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bare websockets server did not start")
        yield port, process
    finally:
        process.terminate()
        process.wait(15)


async def _open(
    port: int, count: int, on_frame: Callable[[int, str], None], *, first: int = 0, concurrency: int = 100
) -> tuple[Any, list[Any], list[asyncio.Task[None]]]:
    """``count`` sockets to the bare server, from the gateway benchmarks' client (aiohttp)."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets: list[Any] = [None] * count
    readers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(concurrency)

    async def reader(index: int, ws: Any) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                on_frame(index, message.data)

    async def open_one(index: int) -> None:
        async with gate:
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{port}/ws?i={first + index}", heartbeat=None, max_msg_size=0
            )
        sockets[index] = ws
        readers.append(asyncio.create_task(reader(first + index, ws)))

    await asyncio.gather(*(open_one(i) for i in range(count)))
    return session, sockets, readers


async def _close(session: Any, sockets: list[Any], readers: list[asyncio.Task[None]]) -> None:
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)
    await session.close()


async def ws_push(*, sockets: int, frames: int) -> dict[str, Any]:
    """Frames per second (and per server CPU-second) the bare server writes to ``sockets`` sockets."""
    raise_open_files(sockets * 2 + 1000)
    received = 0
    done = asyncio.Event()

    def on_frame(index: int, data: str) -> None:
        nonlocal received
        received += 1
        if received >= frames:
            done.set()

    with bare_server() as (port, process):
        opened = await _open(port, sockets, on_frame)
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        await opened[1][0].send_str(f"push {frames}")
        with suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=60)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(process.pid) - cpu_before
        await _close(*opened)
    return {
        "sockets": sockets,
        "frames_sent": frames,
        "frames_received": received,
        "seconds": round(elapsed, 2),
        "frames_per_second": round(received / elapsed, 1),
        "server_cpu_seconds": round(cpu, 2),
        "frames_per_server_cpu_second": round(received / cpu, 1) if cpu else None,
    }


async def ws_idle(*, connections: int) -> dict[str, Any]:
    """RSS per idle socket of the bare server, measured as bench.ws_idle measures daphne's."""
    limit = raise_open_files(connections * 2 + 1000)
    with bare_server() as (port, process):
        warm = await _open(port, 1, lambda i, d: None, first=connections)
        await asyncio.sleep(1)
        base = rss_mib(process.pid)
        started = time.monotonic()
        opened = await _open(port, connections, lambda i, d: None, concurrency=200)
        opened_in = time.monotonic() - started
        await asyncio.sleep(3)
        full = rss_mib(process.pid)
        alive = sum(1 for ws in opened[1] if ws is not None and not ws.closed)
        await _close(*opened)
        await _close(*warm)
    return {
        "connections": connections,
        "alive": alive,
        "open_files_limit": limit,
        "handshakes_per_second": round(connections / opened_in, 1),
        "rss_base_mib": round(base, 1),
        "rss_with_sockets_mib": round(full, 1),
        "kib_per_connection": round((full - base) * 1024 / connections, 2),
    }


async def redis_socket(*, sockets: int, rate: int, count: int) -> dict[str, Any]:
    """Open-loop Redis PUBLISH → bare server → socket latency at ``rate``/s over ``sockets`` sockets."""
    from core.redis import redis_async

    raise_open_files(sockets * 2 + 1000)
    channel = f"bench-floor-{uuid.uuid4().hex[:8]}"
    latencies = Histogram()
    arrived = 0

    def on_frame(index: int, data: str) -> None:
        nonlocal arrived
        arrived += 1
        latencies.record((time.time() - float(json.loads(data)["due"])) * 1000)

    with bare_server(redis_channel=channel) as (port, _process):
        opened = await _open(port, sockets, on_frame)
        redis = redis_async()
        await redis.ping()
        rng = random.Random(7)
        pending: set[asyncio.Task[Any]] = set()
        async for _n, due in aschedule(rate=rate, count=count):
            message = json.dumps({"i": rng.randrange(sockets), "due": due, "body": FRAME_BODY})
            task = asyncio.create_task(redis.publish(channel, message))
            pending.add(task)
            task.add_done_callback(pending.discard)
        deadline = time.monotonic() + 10
        while arrived < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await _close(*opened)
    return {
        "sockets": sockets,
        "rate": rate,
        "sent": count,
        "lost": count - arrived,
        "ms": latencies.summary(),
    }


# --- Kafka ------------------------------------------------------------------------------------------------


def kafka_latency(*, rate: int, count: int) -> dict[str, Any]:
    """Open-loop produce → consume latency of the broker alone at ``rate``/s, one partition, with the
    engine's producer (``linger.ms`` 0, as bench.ws_latency's) and consumer settings."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    from messaging.kafka import admin_client, consumer_config, producer_config

    name = f"bench-floor-{uuid.uuid4().hex[:8]}"
    admin = admin_client()
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(15)
    consumer = Consumer(consumer_config(group_id=f"{name}-group"))
    consumer.subscribe([name])
    producer = Producer(producer_config(**{"linger.ms": 0}))
    producer.list_topics(name, timeout=10)
    latencies = Histogram()
    # The consumer joins and gets its partition before the clock starts (as the engine's is warmed up).
    joined = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < joined:
        consumer.poll(0.1)
    stop = threading.Event()
    received = 0

    def consume() -> None:
        nonlocal received
        while not stop.is_set() and received < count:
            # One message per call, as soon as it is fetched: no batch to fill.
            message = consumer.poll(0.05)
            if message is not None and message.error() is None:
                received += 1
                latencies.record((time.time() - float(message.value() or 0)) * 1000)

    thread = threading.Thread(target=consume)
    thread.start()
    for _n, due in schedule(rate=rate, count=count):
        producer.produce(name, value=repr(due).encode())
        producer.poll(0)
    producer.flush(10)
    thread.join(30)
    stop.set()
    consumer.close()
    admin.delete_topics([name])[name].result(15)
    return {"rate": rate, "sent": count, "lost": count - received, "ms": latencies.summary()}


# --- Celery -----------------------------------------------------------------------------------------------


def celery_noop(*, tasks: int, workers: int, concurrency: int) -> dict[str, Any]:
    """Tasks per second that Celery workers drain when the task does nothing: ``celery.accumulate`` (a
    built-in that returns its argument), on the sends' queue, with the sends benchmark's workers and
    prefetch. The tasks are queued first; the drain is timed from the first taken to the queue and the
    unacknowledged set both empty (tasks are acknowledged after they ran)."""
    import tempfile
    from pathlib import Path

    from chaos.sends import django_setup, purge_queues
    from chaos.worker import CeleryWorker

    django_setup({})
    import redis as redis_py
    from django.conf import settings

    from intervention_engine.celery import app

    purge_queues()
    redis = redis_py.Redis.from_url(settings.CELERY_BROKER_URL)
    redis.delete("unacked", "unacked_index")
    with app.producer_or_acquire() as producer:
        for _ in range(tasks):
            app.send_task("celery.accumulate", args=(1,), queue="sms", producer=producer)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    env = {
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
        "CELERY_WORKER_PREFETCH_MULTIPLIER": "4",
        "DEBUG": "false",
    }
    pool = [
        CeleryWorker(
            env=env, log_path=log_dir / f"w{n}.log", queues="sms", concurrency=concurrency, name=f"noop{n}"
        )
        for n in range(workers)
    ]
    try:
        for worker in pool:
            worker.process = subprocess.Popen(
                worker.command, cwd=ROOT, env=worker.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 120
        while redis.llen("sms") >= tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        started = time.monotonic()
        while (redis.llen("sms") or redis.hlen("unacked")) and time.monotonic() < deadline:
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        left = redis.llen("sms") + redis.hlen("unacked")
    finally:
        for worker in pool:
            worker.kill9()
        purge_queues()
    return {
        "tasks": tasks,
        "workers": workers,
        "threads_per_worker": concurrency,
        "left": left,
        "seconds": round(elapsed, 2),
        "tasks_per_second": round((tasks - left) / elapsed, 1) if elapsed else None,
    }


# --- PostgreSQL -------------------------------------------------------------------------------------------


def keyset(*, rows: int, page: int) -> dict[str, Any]:
    """A bare keyset walk over ``rows`` shoppers (``id > last ORDER BY id LIMIT page``, reading the user id
    and e-mail a fan-out hands on), in one transaction rolled back: the floor of a campaign's fan-out."""
    from chaos.sends import django_setup

    django_setup({})
    from django.db import connection, transaction

    from personalization.models import Profile

    table = Profile._meta.db_table
    run = uuid.uuid4().hex[:8]
    with transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            # Every NOT NULL column gets its model default (Django's defaults are not the database's).
            columns, values, params = [], [], []
            for model_field in Profile._meta.concrete_fields:
                if model_field.primary_key:
                    continue
                columns.append(f'"{model_field.column}"')
                if model_field.name == "user_id":
                    values.append(f"'fanout-{run}-' || g")
                elif model_field.name == "email":
                    values.append(f"'fanout-{run}-' || g || '@example.com'")
                elif model_field.null:
                    values.append("NULL")
                elif getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
                    values.append("now()")
                else:
                    values.append("%s")
                    params.append(model_field.get_db_prep_save(model_field.get_default(), connection))
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608  (names from the model)
                f"SELECT {', '.join(values)} FROM generate_series(1, %s) g",
                [*params, rows],
            )
            cursor.execute(f"ANALYZE {table}")
            created = time.perf_counter() - started
            walked, last, pages = 0, 0, 0
            started = time.perf_counter()
            while True:
                cursor.execute(
                    f"SELECT id, user_id, email FROM {table} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                    [last, page],
                )
                batch = cursor.fetchall()
                if not batch:
                    break
                walked += len(batch)
                pages += 1
                last = batch[-1][0]
            elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return {
        "rows": walked,
        "page": page,
        "pages": pages,
        "insert_seconds": round(created, 2),
        "seconds": round(elapsed, 3),
        "rows_per_second": round(walked / elapsed) if elapsed else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floors", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="the bare websockets server (used by the others)")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--redis-channel", default="")
    kafka = commands.add_parser("kafka-latency")
    kafka.add_argument("--rate", type=int, default=500)
    kafka.add_argument("--count", type=int, default=2000)
    redis = commands.add_parser("redis-socket")
    redis.add_argument("--sockets", type=int, default=2000)
    redis.add_argument("--rate", type=int, default=500)
    redis.add_argument("--count", type=int, default=2000)
    push = commands.add_parser("ws-push")
    push.add_argument("--sockets", type=int, default=1000)
    push.add_argument("--frames", type=int, default=100_000)
    idle = commands.add_parser("ws-idle")
    idle.add_argument("--connections", type=int, default=10_000)
    noop = commands.add_parser("celery-noop")
    noop.add_argument("--tasks", type=int, default=10_000)
    noop.add_argument("--workers", type=int, default=2)
    noop.add_argument("--concurrency", type=int, default=8)
    walk = commands.add_parser("keyset")
    walk.add_argument("--rows", type=int, default=200_000)
    walk.add_argument("--page", type=int, default=1000)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")
    if args.command in ("serve", "kafka-latency", "redis-socket"):
        import django

        django.setup()
    if args.command == "serve":
        asyncio.run(_serve(args.port, args.redis_channel))
        return 0
    result: dict[str, Any]
    if args.command == "kafka-latency":
        result = kafka_latency(rate=args.rate, count=args.count)
    elif args.command == "redis-socket":
        result = asyncio.run(redis_socket(sockets=args.sockets, rate=args.rate, count=args.count))
    elif args.command == "ws-push":
        result = asyncio.run(ws_push(sockets=args.sockets, frames=args.frames))
    elif args.command == "ws-idle":
        result = asyncio.run(ws_idle(connections=args.connections))
    elif args.command == "celery-noop":
        result = celery_noop(tasks=args.tasks, workers=args.workers, concurrency=args.concurrency)
    else:
        result = keyset(rows=args.rows, page=args.page)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
