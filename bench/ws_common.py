"""Shared pieces of the WebSocket benchmarks: a real daphne process, tickets, many client sockets.

Loopback only. Each benchmark starts its own daphne on a free port (with the environment's PostgreSQL,
Redis and Kafka), raises the open-files limit, and cleans up after itself.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def django_setup() -> None:
    from chaos.sends import django_setup as setup

    setup({})


def raise_open_files(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def daphne_process(
    *,
    extra_env: dict[str, str] | None = None,
    log_path: Path | None = None,
    application: str = "intervention_engine.asgi:application",
) -> Any:
    """Yields (port, Popen). Logging is kept at warning level so the log does not skew the numbers."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "intervention_engine.settings"),
        "PORT": str(port),
        "WS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        # Benchmarks measure the gateway, not the flood guard.
        "WS_MAX_MESSAGES_PER_SECOND": "100000",
        **(extra_env or {}),
    }
    log_path = log_path or (Path(os.environ["WS_BENCH_LOG"]) if os.environ.get("WS_BENCH_LOG") else None)
    log = open(log_path or os.devnull, "wb")  # noqa: SIM115  (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            application,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("daphne did not start") from None
                time.sleep(0.1)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: on a shared machine, work per CPU-second is the fair figure."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def processes_cpu(pids: Mapping[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process that this user may read (an unknown pid, a server of
    another machine or of another user is left out)."""
    import psutil

    used = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            used[name] = cpu_seconds(pid)
        except psutil.Error:
            continue
    return used


def listening_pid(address: str) -> int | None:
    """The process listening on ``host:port`` on this machine (the local broker, say), or None when the
    address is another machine's or nobody here listens on it."""
    import psutil

    host, _, port = address.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "") or not port.isdigit():
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:  # not allowed to map sockets to processes here: the figure is left out
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == int(port) and conn.pid:
            return int(conn.pid)
    return None


def histogram_quantiles(directory: str, name: str, quantiles: Sequence[float]) -> dict[str, float] | None:
    """Quantiles (ms, interpolated within buckets) of a histogram that processes wrote to the Prometheus
    multiprocess ``directory``, with its count; None if nothing was observed."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    buckets: list[tuple[float, float]] = []
    for family in registry.collect():
        if family.name == name:
            buckets = sorted(
                (float(sample.labels["le"]), sample.value)
                for sample in family.samples
                if sample.name == f"{name}_bucket"
            )
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    out: dict[str, float] = {"count": total}
    for q in quantiles:
        rank, low, below = q * total, 0.0, 0.0
        for bound, cumulative in buckets:
            if cumulative >= rank:
                if bound == float("inf"):
                    value = low
                else:
                    share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
                    value = low + (bound - low) * share
                out[f"p{round(q * 100)}_ms"] = round(1000 * value, 1)
                break
            low, below = bound, cumulative
    return out


def rss_mib(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


async def open_sockets(
    *,
    port: int,
    user_ids: list[str],
    concurrency: int = 100,
    on_frame: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[Any, list[Any], list[asyncio.Task[None]]]:
    """Open one authenticated socket per user id; returns (session, sockets, reader tasks)."""
    import aiohttp

    from gateway.tickets import ws_ticket_issue

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    origin = f"http://127.0.0.1:{port}"
    sockets: list[Any] = [None] * len(user_ids)
    readers: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(concurrency)

    async def reader(index: int, ws: Any) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT and on_frame is not None:
                on_frame(index, message.json())

    async def open_one(index: int, user_id: str) -> None:
        async with gate:
            # Issued at the last moment: a ticket lives 60 s, and a queue of 10,000 handshakes is longer.
            ticket, _ = ws_ticket_issue(user_id=user_id, session_id=f"bench-{index}")
            for attempt in range(5):
                try:
                    ws = await session.ws_connect(
                        f"ws://127.0.0.1:{port}/ws?ticket={ticket}",
                        headers={"Origin": origin},
                        heartbeat=None,
                        autoping=True,
                        max_msg_size=0,
                    )
                    break
                except aiohttp.ClientError:
                    if attempt == 4:
                        raise
                    ticket, _ = ws_ticket_issue(user_id=user_id, session_id=f"bench-{index}")
                    await asyncio.sleep(0.2 * (attempt + 1))
        sockets[index] = ws
        readers.append(asyncio.create_task(reader(index, ws)))

    await asyncio.gather(*(open_one(i, u) for i, u in enumerate(user_ids)))
    return session, sockets, readers


async def close_sockets(session: Any, sockets: list[Any], readers: list[asyncio.Task[None]]) -> None:
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)
    await session.close()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
