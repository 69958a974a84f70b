"""Drill: Redis restarted, then the daphne process restarted, while on-site interventions stream to
shoppers' open sockets.

    python -m chaos websocket [--shoppers 50] [--rate 20] [--seconds 36] [--redis-down 3]

A Redis of the drill's own (it is stopped and started again), a real daphne (killed with SIGKILL and
started again on the same port) and ``--shoppers`` clients that behave as the browser client
(``static/intervention-engine/intervention-engine.js``): on every (re)connection a fresh ticket and
``{"type": "resume", "last_seq": N}``, an ack for every intervention, a ``resume`` on a hole in the
sequence and the frames after it held until the resume's answer (``replayed``), reconnection with
exponential backoff and full jitter. The decision path (in this process) decides a sure on-site
prediction for a random shopper ``--rate`` times a second and pushes it.
Passes when every shopper ends up with every on-site intervention decided for them (0 missing), none
shown twice (a repeat frame is counted, and dropped as the client does), in ``seq`` order, and the
catch-up after a reconnection (socket open → holding everything decided before it) has p95 ≤ 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from chaos.faults import say

BACKOFF_BASE, BACKOFF_MAX, HOLD_SECONDS = 0.5, 30.0, 3.0  # the browser client's


class Shopper:
    """One browser tab, as the JS client behaves."""

    def __init__(self, *, user_id: str, url: str) -> None:
        self.user_id = user_id
        self.url = url
        self.last_seq = 0
        self.seen: set[str] = set()
        self.received: dict[str, float] = {}  # intervention id -> when it first arrived
        self.order: list[int] = []  # seq of each first arrival
        self.repeats = 0
        self.opened: list[float] = []
        self.held: list[dict[str, Any]] = []
        self.hold_until = 0.0
        self.failed_handshakes = 0

    async def run(self, session: Any, stop: asyncio.Event) -> None:
        import aiohttp

        from gateway.tickets import ws_ticket_issue

        attempt = 0
        origin = {"Origin": self.url.replace("ws://", "http://").rsplit("/", 1)[0]}
        while not stop.is_set():
            ticket, _ = ws_ticket_issue(user_id=self.user_id, session_id="s-chaos")
            try:
                async with session.ws_connect(f"{self.url}?ticket={ticket}", headers=origin) as ws:
                    attempt = 0
                    self.opened.append(time.monotonic())
                    await ws.send_json({"type": "resume", "last_seq": self.last_seq})
                    self.hold_until = time.monotonic() + HOLD_SECONDS
                    closing = asyncio.ensure_future(stop.wait())
                    while not stop.is_set():
                        receiving = asyncio.ensure_future(ws.receive())
                        while not receiving.done() and not closing.done():
                            await asyncio.wait({receiving, closing}, timeout=0.1)
                            if self.held and time.monotonic() >= self.hold_until:
                                # No answer yet: ask again (the browser's timer does the same).
                                await ws.send_json({"type": "resume", "last_seq": self.last_seq})
                                self.hold_until = time.monotonic() + HOLD_SECONDS
                        if not receiving.done():
                            receiving.cancel()
                            break
                        message = receiving.result()
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        frame = message.json()
                        if frame.get("type") == "intervention":
                            await self.receive(ws, frame)
                        elif frame.get("type") == "replayed" and self.held:
                            if frame["complete"]:
                                self.release_held(all_of_them=True)
                            else:
                                await ws.send_json({"type": "resume", "last_seq": self.last_seq})
                                self.hold_until = time.monotonic() + HOLD_SECONDS
                    closing.cancel()
            except aiohttp.WSServerHandshakeError:
                self.failed_handshakes += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if stop.is_set():
                return
            delay = random.random() * min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt)  # noqa: S311
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def receive(self, ws: Any, frame: dict[str, Any]) -> None:
        intervention_id = frame["intervention_id"]
        await ws.send_json({"type": "ack", "intervention_id": intervention_id})
        if intervention_id in self.seen:
            self.repeats += 1
            return
        if frame["seq"] > self.last_seq + 1:
            # A hole: ask for it and hold this frame until the resume's answer (``replayed``).
            if all(f["intervention_id"] != intervention_id for f in self.held):
                if not self.held:
                    await ws.send_json({"type": "resume", "last_seq": self.last_seq})
                    self.hold_until = time.monotonic() + HOLD_SECONDS
                self.held.append(frame)
            return
        self.accept(frame)
        self.release_held()

    def release_held(self, *, all_of_them: bool = False) -> None:
        self.held.sort(key=lambda f: f["seq"])
        while self.held and (all_of_them or self.held[0]["seq"] <= self.last_seq + 1):
            frame = self.held.pop(0)
            if frame["intervention_id"] not in self.seen:
                self.accept(frame)

    def accept(self, frame: dict[str, Any]) -> None:
        self.seen.add(frame["intervention_id"])
        self.received[frame["intervention_id"]] = time.monotonic()
        self.order.append(frame["seq"])
        self.last_seq = max(self.last_seq, frame["seq"])


def decide(*, user_id: str) -> str:
    """A sure on-site prediction through the decision path (which pushes it after commit); retried
    while a dependency is away, as the consumer retries a batch."""
    from django.db import close_old_connections
    from django.utils import timezone

    from delivery.events import parse_prediction
    from delivery.services import decisions_process_batch

    body = {
        "prediction_id": f"ws-{uuid.uuid4().hex}",
        "model": "cart_abandonment",
        "user_id": user_id,
        "score": 0.99,
        "predicted_at": timezone.now().isoformat(),
    }
    error: Exception | None = None
    for _ in range(50):
        try:
            decisions_process_batch(events=[parse_prediction(json.dumps(body).encode())])
            return str(body["prediction_id"])
        except Exception as exc:
            error = exc
            close_old_connections()
            time.sleep(0.2)
    raise RuntimeError(f"could not decide for {user_id}") from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos websocket", description=__doc__)
    parser.add_argument("--shoppers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="decisions per second")
    parser.add_argument("--seconds", type=float, default=36.0, help="how long decisions stream")
    parser.add_argument("--redis-down", type=float, default=3.0, help="seconds Redis stays stopped")
    parser.add_argument("--timeout", type=float, default=90.0, help="catch-up wait after the stream")
    args = parser.parse_args(argv)

    from bench.ws_common import free_port
    from stack.servers import EmbeddedRedis

    work = Path(tempfile.mkdtemp(prefix="chaos-ws-"))
    redis = EmbeddedRedis(
        data_dir=work / "redis", port=free_port(), port_hint="(a free port)", durable=True, say=say
    )
    os.environ["REDIS_URL"] = redis.start()
    try:
        return drill(args, work=work, redis=redis)
    finally:
        redis.stop()


def drill(args: argparse.Namespace, *, work: Path, redis: Any) -> int:
    from chaos.sends import django_setup

    # Every decision a send: the shoppers' daily budget (3 by default) would suppress the rest.
    django_setup({"LOG_LEVEL": "WARNING", "DEBUG": "false", "SHOPPER_DAILY_MESSAGE_BUDGET": "100000"})
    from bench.ws_common import free_port
    from campaigns.models import Campaign
    from chaos.worker import DaphneProcess
    from delivery.selectors import campaign_cache
    from interventions.models import Intervention
    from tests import fixtures

    campaign = fixtures.campaign_live(
        channels=["onsite"], channel_strategy="fixed", conditions="score >= 0.95"
    )
    campaign_cache.invalidate()
    run = uuid.uuid4().hex[:8]
    port = free_port()
    daphne = DaphneProcess(
        env={"LOG_LEVEL": "WARNING", "WS_MAX_MESSAGES_PER_SECOND": "1000"},
        log_path=work / "daphne.log",
        port=port,
    )
    daphne.start()
    url = f"ws://127.0.0.1:{port}/ws"
    shoppers = [Shopper(user_id=f"chaos-{run}-ws-{n}", url=url) for n in range(args.shoppers)]
    faults: dict[str, float] = {}
    decided_at: dict[str, float] = {}  # trigger event id -> committed (monotonic)
    stop = asyncio.Event()
    release = threading.Event()
    started = time.monotonic()

    def stream() -> None:
        from django.db import connection

        rng = random.Random(5)  # noqa: S311
        try:
            n = 0
            while time.monotonic() - started < args.seconds:
                delay = started + n / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                decided_at[decide(user_id=rng.choice(shoppers).user_id)] = time.monotonic()
                n += 1
        finally:
            connection.close()

    def break_things() -> None:
        time.sleep(args.seconds * 0.25)
        faults["redis_down"] = time.monotonic()
        redis.stop()
        say(f"redis stopped at {faults['redis_down'] - started:.1f} s")
        time.sleep(args.redis_down)
        redis.start()
        faults["redis_back"] = time.monotonic()
        say(f"redis back at {faults['redis_back'] - started:.1f} s")
        time.sleep(args.seconds * 0.3)
        faults["daphne_down"] = time.monotonic()
        daphne.kill9()
        daphne.start()
        faults["daphne_back"] = time.monotonic()
        say(f"daphne killed and started again at {faults['daphne_back'] - started:.1f} s")
        # Redis was started by this thread and dies with it (PR_SET_PDEATHSIG): keep it until the end.
        release.wait()

    async def clients() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.ensure_future(s.run(session, stop)) for s in shoppers]
            streamer = threading.Thread(target=stream, daemon=True)
            breaker = threading.Thread(target=break_things, daemon=True)
            streamer.start()
            breaker.start()
            while streamer.is_alive() or "daphne_back" not in faults:
                await asyncio.sleep(0.2)
            # Until every shopper holds everything decided for them, or the time is up.
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                expected = await asyncio.to_thread(expected_by_user)
                if all(expected.get(s.user_id, set()) <= s.seen for s in shoppers):
                    break
                await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    def expected_by_user() -> dict[str, set[str]]:
        by_user: dict[str, set[str]] = {}
        for pk, user_id in Intervention.objects.filter(campaign=campaign, channel="onsite").values_list(
            "pk", "user_id"
        ):
            by_user.setdefault(user_id, set()).add(str(pk))
        return by_user

    try:
        asyncio.run(clients())
        expected = expected_by_user()
        missing = sum(len(expected.get(s.user_id, set()) - s.seen) for s in shoppers)
        out_of_order = sum(
            sum(1 for a, b in zip(s.order, s.order[1:], strict=False) if b < a) for s in shoppers
        )
        committed = {
            str(pk): (user_id, decided_at[event_id])
            for pk, user_id, event_id in Intervention.objects.filter(
                campaign=campaign, channel="onsite"
            ).values_list("pk", "user_id", "trigger_event_id")
        }
        catch_up = sorted(catch_up_seconds(shoppers, committed=committed, after=faults["redis_down"]))
        p95 = catch_up[min(len(catch_up) - 1, int(0.95 * len(catch_up)))] if catch_up else 0.0
        summary: dict[str, Any] = {
            "shoppers": len(shoppers),
            "decided": sum(len(v) for v in expected.values()),
            "received": sum(len(s.seen) for s in shoppers),
            "missing": missing,
            "repeats_dropped": sum(s.repeats for s in shoppers),
            "out_of_order": out_of_order,
            "reconnections": sum(max(0, len(s.opened) - 1) for s in shoppers),
            "refused_handshakes": sum(s.failed_handshakes for s in shoppers),
            "catch_ups": len(catch_up),
            "catch_up_p95_s": round(p95, 2),
            "catch_up_max_s": round(max(catch_up, default=0.0), 2),
            "seconds": round(time.monotonic() - started, 1),
        }
        disordered = [
            s.order for s in shoppers if any(b < a for a, b in zip(s.order, s.order[1:], strict=False))
        ]
        if disordered:
            summary["examples"] = disordered[:2]
        print(json.dumps(summary), flush=True)
        ok = missing == 0 and out_of_order == 0 and p95 <= 5.0 and summary["reconnections"] >= len(shoppers)
        print("PASS" if ok else f"FAIL (daphne log: {work / 'daphne.log'})", flush=True)
        return 0 if ok else 1
    finally:
        release.set()
        daphne.kill9()
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.COMPLETED)


def catch_up_seconds(
    shoppers: list[Shopper], *, committed: dict[str, tuple[str, float]], after: float
) -> list[float]:
    """For every reconnection after the first fault: from the socket's opening until the shopper holds
    every intervention committed for them before it that they did not hold yet. ``committed``:
    intervention id -> (user id, when it was committed)."""
    by_user: dict[str, list[tuple[str, float]]] = {}
    for pk, (user_id, at) in committed.items():
        by_user.setdefault(user_id, []).append((pk, at))
    result = []
    for shopper in shoppers:
        for opened in shopper.opened:
            if opened < after:
                continue
            due = [
                shopper.received.get(pk, float("inf"))
                for pk, at in by_user.get(shopper.user_id, [])
                if at < opened and shopper.received.get(pk, float("inf")) >= opened
            ]
            if due:
                result.append(max(due) - opened)
    return result


if __name__ == "__main__":
    sys.exit(main())
