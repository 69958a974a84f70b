"""Benchmark: notification sends per second through real Celery workers, and enqueue latency.

    python -m bench.sends [--sends 4000] [--workers 2] [--concurrency 8] [--delay 0.02] [--enqueue-batch 20]
                          [--enqueue-only]

The provider is the Twilio protocol stub (own process) answering every send in ``--delay`` seconds.
The workers start first and idle; then the deliveries are enqueued ``--enqueue-batch`` at a time
(``deliveries_enqueue``, as the decision path does after commit), each call timed while the workers
already drain; a batch of one channel travels as one task. The drain is timed from the first to the
last message the stub accepted; a "stall" is the longest gap between two accepted messages. Worker CPU
counts from the workers' readiness, so start-up is not in it. The defaults are the configuration of the
issue's target (docs/performance.md), so ``make bench`` measures that.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from chaos.sends import (
    deliveries_create,
    django_setup,
    provider_env,
    purge_queues,
    start_stub,
    statuses,
    stub_state,
)
from chaos.worker import CeleryWorker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sends", description=__doc__)
    parser.add_argument("--sends", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker process")
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument(
        "--enqueue-batch",
        type=int,
        default=20,
        help="deliveries per deliveries_enqueue call (the decision path's hand-off)",
    )
    parser.add_argument(
        "--enqueue-only",
        action="store_true",
        help="time deliveries_enqueue with no worker running (the call's own cost), then purge the queue",
    )
    args = parser.parse_args(argv)

    stub, stub_url = start_stub(delay=args.delay)
    env = provider_env(stub_url)
    django_setup(env)
    from django.conf import settings

    from notifications.services import deliveries_enqueue

    log_dir = Path(tempfile.mkdtemp(prefix="bench-sends-"))
    worker_env = {
        **env,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
        "CELERY_WORKER_PREFETCH_MULTIPLIER": "4",
        # As in production: with DEBUG on, Django keeps every query's SQL in memory (≈ 20 % of a send).
        "DEBUG": "false",
    }
    workers = [
        CeleryWorker(
            env=worker_env,
            log_path=log_dir / f"worker-{n}.log",
            queues="sms",
            concurrency=args.concurrency,
            name=f"bench{n}",
        )
        for n in range(args.workers)
    ]
    try:
        ids = deliveries_create(count=args.sends, channel="sms")
        purge_queues()

        # Workers first, idle until the enqueue begins, so their CPU from here on is the sends' alone (not
        # the process start-up) and the enqueue is timed while they drain, as on the decision path.
        for worker in workers if not args.enqueue_only else []:
            worker.start()
        cpu_at_ready = sum(_cpu_seconds(worker) for worker in workers)
        stub_cpu_at_ready = _process_cpu_seconds(stub.pid)
        own_cpu_at_ready = time.process_time()

        # Phase 1: enqueue latency, --enqueue-batch deliveries per call (the decision path's batches).
        latencies = []
        for start in range(0, len(ids), args.enqueue_batch):
            started = time.perf_counter()
            deliveries_enqueue(delivery_ids=ids[start : start + args.enqueue_batch])
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        enqueue_ms = {
            "p50": round(statistics.median(latencies), 3),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1], 3),
            "max": round(latencies[-1], 3),
        }
        if args.enqueue_only:
            purge_queues()
            summary = {"calls": len(latencies), "enqueue_batch": args.enqueue_batch, "enqueue_ms": enqueue_ms}
            print(json.dumps({**summary, "load_average": os.getloadavg()}, indent=2), flush=True)
            return 0

        # Phase 2: the drain, until no delivery is left queued or sending.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            current = statuses(ids)
            if not current.get("queued") and not current.get("sending"):
                break
            time.sleep(0.5)
        final = statuses(ids)
        worker_cpu = sum(_cpu_seconds(worker) for worker in workers) - cpu_at_ready
        stub_cpu = _process_cpu_seconds(stub.pid) - stub_cpu_at_ready
        own_cpu = time.process_time() - own_cpu_at_ready
        received = sorted(m["received_at"] for m in stub_state(stub_url)["sms"] if "chaos-" in m["body"])
        span = received[-1] - received[0] if len(received) > 1 else float("nan")
        gaps = [b - a for a, b in itertools.pairwise(received)]
        per_second: dict[int, int] = {}
        for stamp in received:
            second = int(stamp - received[0])
            per_second[second] = per_second.get(second, 0) + 1
        result = {
            "sends": args.sends,
            "workers": args.workers,
            "threads_per_worker": args.concurrency,
            "provider_delay_ms": args.delay * 1000,
            "statuses": dict(final),
            "sends_per_second": round(len(received) / span, 1) if span == span else None,
            "drain_seconds": round(span, 2),
            "slowest_second": min(per_second.values()) if len(per_second) > 2 else None,
            "longest_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
            "enqueue_batch": args.enqueue_batch,
            "enqueue_ms": enqueue_ms,
            # CPU the worker processes spent draining, per send: the figure that depends least on how
            # busy the machine was. 2 cores / this = the ceiling for workers alone.
            "worker_cpu_ms_per_send": round(worker_cpu * 1000 / max(len(received), 1), 2),
            # The same 2 cores also run the provider stub (Python, a thread per connection) and this
            # process (enqueue, then polling the ledger): their share is the workers' missing share.
            "stub_cpu_ms_per_send": round(stub_cpu * 1000 / max(len(received), 1), 2),
            "bench_process_cpu_ms_per_send": round(own_cpu * 1000 / max(len(received), 1), 2),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        }
        print(json.dumps(result, indent=2), flush=True)
        return 0 if final.get("sent") == args.sends else 1
    finally:
        for worker in workers:
            worker.kill9()
        stub.terminate()
        stub.wait(10)


def _process_cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _cpu_seconds(worker: CeleryWorker) -> float:
    import psutil

    if worker.process is None or worker.process.poll() is not None:
        return 0.0
    times = psutil.Process(worker.process.pid).cpu_times()
    return float(times.user + times.system)


if __name__ == "__main__":
    raise SystemExit(main())
