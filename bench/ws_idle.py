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
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.ws_common import (
    close_sockets,
    cpu_seconds,
    daphne_process,
    django_setup,
    open_sockets,
    raise_open_files,
    rss_mib,
)

# /ws/stats is an operator endpoint: the daphne started here accepts this scrape token.
STATS_TOKEN = secrets.token_urlsafe(32)


async def run(*, connections: int, concurrency: int) -> dict[str, float]:
    from gateway.presence import online_user_ids, users_online_count

    limit = raise_open_files(connections * 2 + 1000)
    # daphne's log (WS_BENCH_LOG, or a temporary file) tells whether it had to cancel any clean-up.
    log_path = Path(os.environ.get("WS_BENCH_LOG") or tempfile.mkstemp(prefix="ws_idle-", suffix=".log")[1])
    with daphne_process(log_path=log_path, extra_env={"METRICS_TOKEN": STATS_TOKEN}) as (port, process):
        warm = await open_sockets(port=port, user_ids=["bench-warmup"])
        online_before = await asyncio.to_thread(users_online_count)
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
        # The figures above are a process that has served WebSocket only. Django's first HTTP request
        # (here GET /ws/stats) imports the rest of the project: what a process serving both holds.
        await _stats(port)
        await asyncio.sleep(1)
        full_with_http = rss_mib(process.pid)
        await close_sockets(session, sockets, readers)
        # Every socket hung up at once: how long until the process has cleaned them all up (groups left,
        # presence removed), as /ws/stats — served by this same process — reports it: its connection
        # count back to the warm-up socket and nobody of this run still online.
        closed_at = time.monotonic()
        remaining, _online_after = await _cleaned_up(port, pid=process.pid, expected=1, online=online_before)
        drained_in = time.monotonic() - closed_at
        # Counted per shopper of this run: the total also moves as earlier runs' presence lapses.
        still_online = len(await asyncio.to_thread(online_user_ids, users))
        await close_sockets(*warm)
    log = log_path.read_text(errors="replace")
    if not os.environ.get("WS_BENCH_LOG"):
        log_path.unlink()
    return {
        "connections": connections,
        "alive": alive,
        "open_files_limit": limit,
        "handshakes_per_second": round(connections / opened_in, 1),
        "handshakes_per_daphne_cpu_second": round(connections / handshake_cpu, 1),
        "rss_base_mib": round(base, 1),
        "rss_with_sockets_mib": round(full, 1),
        "kib_per_connection": round((full - base) * 1024 / connections, 1),
        "rss_with_sockets_after_first_http_request_mib": round(full_with_http, 1),
        "mass_disconnect_cleaned_up_seconds": round(drained_in, 1),
        "connections_left_after_cleanup": remaining - 1,
        "users_left_online_after_cleanup": still_online,
        # Clean-ups daphne cancelled after its application close timeout (10 s), left half-done.
        "cleanups_killed_by_daphne": log.count("took too long to shut down"),
    }


async def _stats(port: int) -> dict[str, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{port}/ws/stats", headers={"Authorization": f"Bearer {STATS_TOKEN}"}
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def _cleaned_up(
    port: int, *, pid: int, expected: int, online: int, timeout: float = 60
) -> tuple[int, int]:
    """Polls /ws/stats until this process is down to ``expected`` connections and users online to
    ``online``; returns both figures as last seen."""
    deadline = time.monotonic() + timeout
    while True:
        body = await _stats(port)
        mine = [p for p in body["processes"] if p["process"].endswith(f":{pid}")]
        left = int(mine[0]["connections"]) if mine else -1
        users = int(body["total"]["users_online"])
        if (left <= expected and users <= online) or time.monotonic() > deadline:
            return left, users
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    django_setup()
    print(json.dumps(asyncio.run(run(connections=args.connections, concurrency=args.concurrency)), indent=2))


if __name__ == "__main__":
    main()
