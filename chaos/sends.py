"""Drill: 1,000 SMS through a real Celery worker that is killed with SIGKILL again and again.

    python -m chaos sends [--sends 1000] [--kills 6] [--concurrency 16] [--delay 0.02]

Passes when every delivery ends ``sent``, the Twilio stub holds exactly one message per delivery (0
duplicates) and none is missing (0 lost). Beat's two sweeps run here every half second, with short
timeouts, so interrupted sends are settled (asked of the provider) and lost broker messages re-published
within seconds instead of minutes. Needs DATABASE_URL / REDIS_URL (``make chaos`` provides test servers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent


def start_stub(*, delay: float) -> tuple[subprocess.Popen[str], str]:
    """The Twilio + FCM stub in its own process, so it neither dies with nor competes with the worker."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos.provider_stub", "--port", "0", "--delay", str(delay)],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().strip())
    return process, f"http://127.0.0.1:{port}"


def stub_state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_state", timeout=30) as response:  # noqa: S310  (local stub)
        state: dict[str, Any] = json.load(response)
    return state


def provider_env(stub_url: str) -> dict[str, str]:
    """Settings for the worker and this process alike (the sweeps' lookups must match the sends)."""
    return {
        "PUBLIC_URL": "https://shop.example",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "chaos-token",
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_BASE": stub_url,
        "TWILIO_TIMEOUT": "5",
        "FCM_PROJECT_ID": "ie-chaos",
        "FCM_ENDPOINT": stub_url + "/v1/projects/{}/messages:send",
        "NOTIFICATION_BACKOFF_BASE_SECONDS": "0.2",
        "NOTIFICATION_BACKOFF_MAX_SECONDS": "2",
        "NOTIFICATION_MAX_ATTEMPTS": "20",
        "NOTIFICATION_SENDING_TIMEOUT_SECONDS": "3",
        "NOTIFICATION_REQUEUE_AFTER_SECONDS": "3",
        "LOG_LEVEL": "WARNING",
    }


def django_setup(env: dict[str, str], *, migrate: bool = True) -> None:
    """Django for a drill or benchmark, with ``env`` over the environment. ``migrate``: bring the
    database's schema up to date first (``make bench`` and ``make chaos`` start an empty one)."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)


def deliveries_create(*, count: int, channel: str) -> list[Any]:
    """``count`` shoppers with one queued delivery each; every message body is unique."""
    from campaigns.models import Campaign
    from interventions.models import Delivery, Intervention
    from personalization.models import Profile, PushToken

    run = uuid.uuid4().hex[:8]
    # Only a container for the deliveries: completed, so that it never decides an event of a consumer
    # that shares the database (a benchmark run after this one would count its decisions).
    campaign = Campaign.objects.create(
        name=f"chaos {run}", trigger="prediction.cart_abandonment", status=Campaign.Status.COMPLETED
    )
    profiles = Profile.objects.bulk_create(
        [
            Profile(
                user_id=f"chaos-{run}-{i}",
                email=f"chaos-{run}-{i}@example.com",
                phone=f"+336{i:08d}",
                consent_sms=True,
            )
            for i in range(count)
        ]
    )
    if channel == "push":
        PushToken.objects.bulk_create([PushToken(profile=p, token=f"tok-{p.user_id}") for p in profiles])
    interventions = Intervention.objects.bulk_create(
        [
            Intervention(
                campaign=campaign,
                profile=p,
                user_id=p.user_id,
                trigger_event_id=f"{run}-{i}",
                trigger="prediction.cart_abandonment",
                channel=channel,
                content={"subject": "Your cart", "body_text": f"Your cart is waiting, {p.user_id}."},
            )
            for i, p in enumerate(profiles)
        ]
    )
    deliveries = Delivery.objects.bulk_create(
        [Delivery(intervention=i, channel=channel) for i in interventions]
    )
    return [d.pk for d in deliveries]


def statuses(ids: list[Any]) -> Counter[str]:
    from interventions.models import Delivery

    return Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))


def sweep() -> None:
    from notifications.sweeps import deliveries_requeue_due, deliveries_settle_stuck

    deliveries_requeue_due(limit=5000)
    deliveries_settle_stuck(limit=5000)


def _sweep_until(stop: threading.Event) -> None:
    from django.db import connection

    try:
        while not stop.wait(0.5):
            sweep()
    finally:
        connection.close()


def purge_queues() -> None:
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("email", "sms", "push")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos sends", description=__doc__)
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.02, help="stub answer time, seconds")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    stub, stub_url = start_stub(delay=args.delay)
    env = provider_env(stub_url)
    django_setup(env)
    from django.conf import settings

    from chaos.worker import CeleryWorker
    from notifications.services import deliveries_enqueue

    log_path = Path(tempfile.mkdtemp(prefix="chaos-")) / "worker.log"
    worker_env = {
        **env,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
    }
    worker = CeleryWorker(env=worker_env, log_path=log_path, concurrency=args.concurrency, queues="sms")
    kills = 0
    try:
        ids = deliveries_create(count=args.sends, channel="sms")
        purge_queues()
        worker.start()
        started = time.monotonic()
        for start in range(0, len(ids), 500):
            deliveries_enqueue(delivery_ids=ids[start : start + 500])
        # Beat's sweeps, every half second, beside the killing (they may have other rows to settle).
        stop = threading.Event()
        sweeper = threading.Thread(target=_sweep_until, args=(stop,), daemon=True)
        sweeper.start()
        next_kill = time.monotonic() + random.uniform(0.3, 1.0)  # noqa: S311
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            current = statuses(ids)
            if not current.get("queued") and not current.get("sending"):
                break
            if kills < args.kills and time.monotonic() >= next_kill:
                worker.kill9()
                kills += 1
                print(f"kill -9 #{kills}: {dict(current)}", flush=True)
                worker.start()
                next_kill = time.monotonic() + random.uniform(0.5, 2.0)  # noqa: S311
            time.sleep(0.1)
        stop.set()
        sweeper.join(30)
        elapsed = time.monotonic() - started
        final = statuses(ids)
        from interventions.models import Delivery

        expected = {
            f"Your cart is waiting, {user_id}."
            for user_id in Delivery.objects.filter(id__in=ids).values_list("intervention__user_id", flat=True)
        }
        received = Counter(m["body"] for m in stub_state(stub_url)["sms"] if m["body"] in expected)
        duplicates = sum(n - 1 for n in received.values() if n > 1)
        lost = len(expected - set(received))
        summary = {
            "sends": args.sends,
            "kills": kills,
            "statuses": dict(final),
            "received_at_stub": sum(received.values()),
            "duplicates": duplicates,
            "lost": lost,
            "seconds": round(elapsed, 1),
        }
        print(json.dumps(summary), flush=True)
        ok = final.get("sent", 0) == args.sends and duplicates == 0 and lost == 0 and kills == args.kills
        print("PASS" if ok else f"FAIL (worker log: {log_path})", flush=True)
        return 0 if ok else 1
    finally:
        worker.kill9()
        stub.terminate()
        stub.wait(10)


if __name__ == "__main__":
    sys.exit(main())
