"""Benchmark: targeted pushes per second through ONE daphne process, and how many are lost.

    python -m bench.ws_push [--sockets 1000] [--frames 20000] [--window 400]

Opens ``--sockets`` authenticated sockets (one user each), then sends ``--frames`` intervention-sized
frames, each to one random user, through the service API (``gateway.realtime.asend_to_user``: group
send over the Redis channel layer → daphne → socket). At most ``--window`` frames are in flight
(sent, not yet received) — the channel layer's per-process capacity is 1,000 messages, beyond which a
group send is dropped by design — so the figure is the sustained rate with nothing lost.
Target (issue 5): ≥ 5,000 frames/s per process, 0 lost.

    python -m bench.ws_push --sockets 2000 --frames 5000 --rate 500

With ``--rate``, frames are instead sent open-loop at that pace, each stamped with its scheduled send time
(no coordinated omission), and the result is the gateway's share of the event-to-frame latency (service
call → channel layer → daphne → socket), without Kafka and the decision path (bench/ws_latency.py
measures the whole path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from typing import Any

from bench.harness import Histogram, aschedule
from bench.ws_common import (
    close_sockets,
    cpu_seconds,
    daphne_process,
    django_setup,
    open_sockets,
    percentile,
    raise_open_files,
)


async def run_paced(*, sockets: int, frames: int, rate: int) -> dict[str, Any]:
    from gateway.realtime import asend_to_user

    raise_open_files(sockets * 2 + 1000)
    latencies: list[float] = []

    def on_frame(index: int, frame: dict[str, object]) -> None:
        if frame.get("type") == "bench":
            latencies.append((time.time() - float(str(frame["sent_at"]))) * 1000)

    users = [f"bench-pace-{uuid.uuid4().hex[:8]}-{i}" for i in range(sockets)]
    with daphne_process() as (port, _process):
        session, opened, readers = await open_sockets(port=port, user_ids=users, on_frame=on_frame)
        rng = random.Random(7)
        pending: set[asyncio.Task[None]] = set()
        # Open loop: each frame stamped with its scheduled send time, from which its latency counts.
        async for n, due in aschedule(rate=rate, count=frames):
            frame = {"type": "bench", "n": n, "sent_at": due, "body": "x" * 300}
            task = asyncio.create_task(asend_to_user(users[rng.randrange(sockets)], frame))
            pending.add(task)
            task.add_done_callback(pending.discard)
        deadline = time.monotonic() + 10
        while len(latencies) < frames and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await close_sockets(session, opened, readers)
    histogram = Histogram()
    histogram.record_many(latencies)
    return {
        "sockets": sockets,
        "rate_per_second": rate,
        "frames_sent": frames,
        "lost": frames - len(latencies),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else float("nan"),
        "ms": histogram.summary(),
    }


async def run(*, sockets: int, frames: int, window: int) -> dict[str, float]:
    from gateway.realtime import asend_to_user

    raise_open_files(sockets * 2 + 1000)
    received: dict[int, int] = {}
    arrived = asyncio.Event()

    def on_frame(index: int, frame: dict[str, object]) -> None:
        if frame.get("type") == "bench":
            received[int(str(frame["n"]))] = index
            arrived.set()

    users = [f"bench-push-{uuid.uuid4().hex[:8]}-{i}" for i in range(sockets)]
    with daphne_process() as (port, process):
        session, opened, readers = await open_sockets(port=port, user_ids=users, on_frame=on_frame)
        body = "x" * 300  # about the size of a rendered intervention frame
        rng = random.Random(7)
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        sent = 0
        while sent < frames:
            while sent - len(received) >= window:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), timeout=5)
                except TimeoutError:
                    break  # frames were lost: stop waiting for them, keep sending
            burst = min(50, frames - sent)
            targets = [users[rng.randrange(sockets)] for _ in range(burst)]
            await asyncio.gather(
                *(
                    asend_to_user(user, {"type": "bench", "n": sent + i, "body": body})
                    for i, user in enumerate(targets)
                )
            )
            sent += burst
        deadline = time.monotonic() + 10
        while len(received) < frames and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        daphne_cpu = cpu_seconds(process.pid) - cpu_before
        await close_sockets(session, opened, readers)
    return {
        "sockets": sockets,
        "frames_sent": frames,
        "frames_received": len(received),
        "lost": frames - len(received),
        "seconds": round(elapsed, 2),
        "frames_per_second": round(len(received) / elapsed, 1),
        "daphne_cpu_seconds": round(daphne_cpu, 2),
        "frames_per_daphne_cpu_second": round(len(received) / daphne_cpu, 1) if daphne_cpu else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=400)
    parser.add_argument("--rate", type=int, default=0, help="open-loop frames/s; 0: closed loop")
    args = parser.parse_args()
    django_setup()
    if args.rate:
        result = asyncio.run(run_paced(sockets=args.sockets, frames=args.frames, rate=args.rate))
    else:
        result = asyncio.run(run(sockets=args.sockets, frames=args.frames, window=args.window))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
