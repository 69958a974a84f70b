"""Benchmark: tracking ingest (``POST /api/v1/events``) through ONE daphne process, against a bare handler.

    python -m bench.ingest [--seconds 8] [--concurrency 16] [--batch 10] [--interventions 500]

``--concurrency`` clients (one aiohttp process) post batches of ``--batch`` tracking events (displayed,
opened, clicked, dismissed; each a new ``event_id`` naming one of ``--interventions`` real interventions)
for ``--seconds``, each client posting its next batch when the previous one is answered. The same run then
serves the same requests by a bare ASGI application under the same daphne (``bare_application``: reads
the body, parses the JSON, answers 200 without doing anything) — the floor. Reports events/s, requests/s,
the server's CPU per request and the per-request latency of each, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Histogram
from bench.ws_common import cpu_seconds, daphne_process

EVENT_TYPES = ("displayed", "opened", "clicked", "dismissed")


async def bare_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: an ASGI handler that reads the request, parses the same JSON and does nothing."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    events = json.loads(body)["events"]
    answer = json.dumps({"accepted": len(events), "duplicates": 0}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": answer})


async def load(
    *, port: int, pid: int, key: str, interventions: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    import aiohttp

    url = f"http://127.0.0.1:{port}/api/v1/events"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    rng = random.Random(7)
    counter = itertools.count()
    latencies = Histogram()
    statuses: dict[int, int] = {}
    requests = 0

    def body() -> bytes:
        now = datetime.now(UTC).isoformat()
        events = [
            {
                "event_id": f"bench-ingest-{uuid.uuid4().hex}-{next(counter)}",
                "intervention_id": rng.choice(interventions),
                "type": rng.choice(EVENT_TYPES),
                "occurred_at": now,
                "properties": {"page": "/cart", "element": "cta"},
            }
            for _ in range(args.batch)
        ]
        return json.dumps({"events": events}).encode()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        # One warm-up request: the first one imports the URLconf and opens the database connection.
        async with session.post(url, data=body(), headers=headers) as response:
            await response.read()
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        deadline = started + args.seconds

        async def client() -> None:
            nonlocal requests
            while time.monotonic() < deadline:
                payload = body()
                sent = time.perf_counter()
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                latencies.record((time.perf_counter() - sent) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                requests += 1

        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
    ok = statuses.get(200, 0)
    return {
        "requests": requests,
        "statuses": {str(code): count for code, count in statuses.items()},
        "seconds": round(elapsed, 2),
        "requests_per_second": round(ok / elapsed, 1),
        "events_per_second": round(ok * args.batch / elapsed, 1),
        "server_cpu_ms_per_request": round(cpu * 1000 / max(1, requests), 3),
        "events_per_server_cpu_second": round(ok * args.batch / cpu, 1) if cpu else None,
        "ms": latencies.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--interventions", type=int, default=500)
    args = parser.parse_args(argv)

    from chaos.sends import deliveries_create, django_setup

    django_setup({"DEBUG": "false"})
    from api.services import api_key_create
    from interventions.models import Delivery
    from tracking.models import TrackingEvent

    delivery_ids = deliveries_create(count=args.interventions, channel="sms")
    interventions = [
        str(pk)
        for pk in Delivery.objects.filter(pk__in=delivery_ids).values_list("intervention_id", flat=True)
    ]
    _, key = api_key_create(name=f"bench-ingest-{uuid.uuid4().hex[:8]}", scopes=["events"])
    env = {"LOG_LEVEL": "WARNING", "DEBUG": "false"}
    result: dict[str, Any] = {"batch": args.batch, "concurrency": args.concurrency}
    # daphne's logs (a failed request's traceback), kept when a request failed.
    log_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    with daphne_process(extra_env=env, log_path=log_dir / "engine.log") as (port, process):
        result["engine"] = asyncio.run(
            load(port=port, pid=process.pid, key=key, interventions=interventions, args=args)
        )
    with daphne_process(
        extra_env=env, application="bench.ingest:bare_application", log_path=log_dir / "bare.log"
    ) as (port, process):
        result["bare"] = asyncio.run(
            load(port=port, pid=process.pid, key=key, interventions=interventions, args=args)
        )
    TrackingEvent.objects.filter(event_id__startswith="bench-ingest-").delete()
    engine, bare = result["engine"]["events_per_second"], result["bare"]["events_per_second"]
    result["ratio"] = round(engine / bare, 3) if bare else None
    failed = any(code != "200" for side in ("engine", "bare") for code in result[side]["statuses"])
    if failed:
        result["logs"] = str(log_dir)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
