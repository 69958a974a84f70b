"""Benchmark: idle WebSocket connections held by ONE daphne process, and its memory per connection.

    python -m bench.ws_idle [--connections 10000] [--concurrency 200]

Target (issue 5): 10,000 authenticated sockets in at most 400 MiB RSS. Every socket does the real
handshake: Origin check, ticket redeemed in Redis, user and broadcast groups joined, presence written.
The RSS is daphne's, measured after a warm-up socket and again with every socket open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from bench.ws_common import (
    close_sockets,
    cpu_seconds,
    daphne_process,
    django_setup,
    open_sockets,
    raise_open_files,
    rss_mib,
)


async def run(*, connections: int, concurrency: int) -> dict[str, float]:
    limit = raise_open_files(connections * 2 + 1000)
    with daphne_process() as (port, process):
        warm = await open_sockets(port=port, user_ids=["bench-warmup"])
        await asyncio.sleep(1)
        base = rss_mib(process.pid)
        users = [f"bench-idle-{uuid.uuid4().hex[:8]}-{i}" for i in range(connections)]
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        session, sockets, readers = await open_sockets(port=port, user_ids=users, concurrency=concurrency)
        opened_in = time.monotonic() - started
        handshake_cpu = cpu_seconds(process.pid) - cpu_before
        await asyncio.sleep(3)  # let the process settle (stats publisher, GC)
        full = rss_mib(process.pid)
        alive = sum(1 for ws in sockets if ws is not None and not ws.closed)
        await close_sockets(session, sockets, readers)
        # Every socket hung up at once: how long until the process has cleaned them all up (groups left,
        # presence removed), as /ws/stats — served by this same process — reports it.
        closed_at = time.monotonic()
        remaining = await _connections_left(port, pid=process.pid, expected=1)
        drained_in = time.monotonic() - closed_at
        await close_sockets(*warm)
    return {
        "connections": connections,
        "alive": alive,
        "open_files_limit": limit,
        "handshakes_per_second": round(connections / opened_in, 1),
        "handshakes_per_daphne_cpu_second": round(connections / handshake_cpu, 1),
        "rss_base_mib": round(base, 1),
        "rss_with_sockets_mib": round(full, 1),
        "kib_per_connection": round((full - base) * 1024 / connections, 1),
        "mass_disconnect_cleaned_up_seconds": round(drained_in, 1),
        "connections_left_after_cleanup": remaining - 1,
    }


async def _connections_left(port: int, *, pid: int, expected: int, timeout: float = 60) -> int:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}/ws/stats") as response:
                body = await response.json()
            mine = [p for p in body["processes"] if p["process"].endswith(f":{pid}")]
            left = int(mine[0]["connections"]) if mine else -1
            if left <= expected or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    django_setup()
    print(json.dumps(asyncio.run(run(connections=args.connections, concurrency=args.concurrency)), indent=2))


if __name__ == "__main__":
    main()
