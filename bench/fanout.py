"""Benchmark: plan and fan out a scheduled campaign's audience to the notification queues.

    python -m bench.fanout [--shoppers 250000 1000000] [--batch 500] [--walkers 2]

For each audience size, in a process of its own (so each size's peak memory is its own): the shoppers
are made with one ``INSERT … SELECT generate_series`` (not timed), then a one-off scheduled SMS campaign
to all of them runs as the workers would run it — ``send_run_create`` and ``send_run_snapshot`` (the
segment evaluated in SQL into ``SendRunMember``, one statement, the members dealt into ``--walkers``
chunks) in this process, then one walker process per chunk, started and ready beforehand as a worker
is, calling ``send_run_step`` on its chunk until it is done (keyset walk, the decision path per batch,
and after each commit the hand-off: deliveries published on the ``sms`` Celery queue, sends counted in
Redis). No worker consumes the queue: this is the fan-out, not the sending (bench.sends measures that).

Reported per size: seconds of the snapshot, the walk and both, members per second, messages on the queue,
and the peak RSS of every process involved — this process (the snapshot), each walker, their PostgreSQL
backends and the Redis server — sampled every 0.2 s. A backend's RSS counts the shared buffers it has
touched; Redis holds the per-shopper cap counters of the day, which do grow with the audience.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from chaos.runs import campaign_create, shoppers_create
from chaos.sends import django_setup


class PeakRss:
    """The highest RSS of each named process, sampled on a side thread."""

    def __init__(self, pids: dict[str, int], *, every: float = 0.2) -> None:
        self.processes: dict[str, Any] = {}
        self.peak: dict[str, float] = {}
        self.add(pids)
        self.every = every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def add(self, pids: dict[str, int]) -> None:
        import psutil

        for name, pid in pids.items():
            self.processes[name] = psutil.Process(pid)
            self.peak.setdefault(name, 0.0)

    def _sample(self) -> None:
        while True:
            for name, process in list(self.processes.items()):
                try:
                    rss = process.memory_info().rss / 2**20
                except Exception:  # noqa: S112  (a process gone is sampled no more)
                    continue
                self.peak[name] = max(self.peak[name], rss)
            if self.stop.wait(self.every):
                return

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)

    def mib(self) -> dict[str, float]:
        return {name: round(value, 1) for name, value in self.peak.items()}


def _walker(*, run_id: int, chunk: int, batch: int) -> int:
    """One chunk's walker (a worker's chain of steps): says it is ready with its backend's pid, waits for
    the start on stdin, steps its chunk until done, prints the batches it walked."""
    from django.db import connection

    from delivery import runs

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    runs.send_run_chunks(run_id=run_id)  # the imports and a first query done before the clock starts
    print(json.dumps({"ready": True, "backend": backend}), flush=True)
    sys.stdin.readline()
    steps = 0
    while runs.send_run_step(run_id=run_id, chunk=chunk, batch_size=batch).more:
        steps += 1
    print(json.dumps({"steps": steps}), flush=True)
    return 0


def fanout(*, shoppers: int, batch: int, walkers: int) -> dict[str, Any]:
    """One size, in this process (Django set up); see the module docstring."""
    import os

    import redis
    from django.conf import settings
    from django.db import connection

    from campaigns.models import Campaign
    from delivery import runs
    from delivery.models import SendRun

    settings.SEND_RUN_WALKERS = walkers
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("sms")
    tag = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    created = shoppers_create(count=shoppers, tag=tag)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    campaign = campaign_create(tag=tag)
    setup_seconds = time.perf_counter() - started
    redis_info: dict[str, Any] = dict(broker.info())
    redis_before = int(redis_info["used_memory"])
    pids = {"snapshot process": os.getpid(), "snapshot's postgres backend": backend}
    if redis_info.get("process_id"):
        pids["redis server"] = int(redis_info["process_id"])
    with PeakRss(pids) as peak:
        started = time.perf_counter()
        run = runs.send_run_create(campaign_id=campaign.pk)
        assert run is not None
        run = runs.send_run_snapshot(run_id=run.pk)
        snapshot_seconds = time.perf_counter() - started
        chunks = runs.send_run_chunks(run_id=run.pk)
        procs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "bench.fanout", "--walk", str(run.pk)),
                    *("--chunk", str(chunk), "--batch", str(batch)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for chunk in chunks
        ]
        for chunk, proc in zip(chunks, procs, strict=True):
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline())
            peak.add({f"walker {chunk}": proc.pid, f"walker {chunk}'s postgres backend": ready["backend"]})
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        steps = 0
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"walker exited with {proc.returncode}")
            steps += json.loads(out.strip().splitlines()[-1])["steps"]
        walk_seconds = time.perf_counter() - started
    run = SendRun.objects.get(pk=run.pk)
    messages = int(broker.llen("sms"))
    redis_after = int(broker.info()["used_memory"])
    broker.delete("sms")
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.COMPLETED)
    total = snapshot_seconds + walk_seconds
    return {
        "shoppers": created,
        "audience": run.audience_size,
        "run_state": run.state,
        "books_balance": runs.send_run_books(run=run).balanced,
        "decided": run.decided,
        "queued": run.queued,
        "suppressed": run.suppressed,
        "batch": batch,
        "walkers": len(chunks),
        "steps": steps,
        "setup_seconds": round(setup_seconds, 1),
        "snapshot_seconds": round(snapshot_seconds, 2),
        "walk_seconds": round(walk_seconds, 2),
        "seconds": round(total, 2),
        "members_per_second": round(created / total) if total else None,
        "queue_messages": messages,
        "deliveries_per_message": round(run.queued / messages, 1) if messages else None,
        "peak_rss_mib": peak.mib(),
        "redis_used_memory_growth_mib": round((redis_after - redis_before) / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--shoppers", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--walkers", type=int, default=2, help="chunks of the run, one walker process each")
    parser.add_argument("--one", action="store_true", help="one size, in this process (used by the others)")
    parser.add_argument("--walk", type=int, help="walk this run's --chunk (a walker; used by --one)")
    parser.add_argument("--chunk", type=int, default=0)
    args = parser.parse_args(argv)
    # The render budget is the default's (100 ms of the rendering thread's CPU): a loaded machine no
    # longer makes renders run out of it; any suppression is in the result.
    if args.walk is not None:
        django_setup({"LOG_LEVEL": "WARNING", "DEBUG": "false"})
        return _walker(run_id=args.walk, chunk=args.chunk, batch=args.batch)
    if args.one:
        django_setup({"LOG_LEVEL": "WARNING", "DEBUG": "false"})
        result = fanout(shoppers=args.shoppers[0], batch=args.batch, walkers=args.walkers)
        print(json.dumps(result), flush=True)
        return 0
    sizes: dict[str, Any] = {}
    for size in args.shoppers:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.fanout",
                "--one",
                "--shoppers",
                str(size),
                "--batch",
                str(args.batch),
                "--walkers",
                str(args.walkers),
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"size {size}: exit status {done.returncode}", file=sys.stderr)
            return 1
        sizes[str(size)] = json.loads(lines[-1])
        print(json.dumps(sizes[str(size)]), file=sys.stderr, flush=True)
    largest = sizes[str(max(args.shoppers))]
    print(json.dumps({**largest, "sizes": sizes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
