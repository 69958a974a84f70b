"""Drill: a scheduled campaign's run to 100,000 shoppers, its Celery workers killed with SIGKILL mid-run.

    python -m chaos runs [--shoppers 100000] [--kills 2] [--concurrency 16] [--delay 0.02]

The shoppers are made with one ``INSERT … SELECT generate_series``, the campaign sends one SMS each
through the Twilio stub (its own process; every body names its shopper). Two real workers — one for the
runs' steps (queue ``default``, two threads: the run's two chunks are walked side by side), one for the
sends (``sms``) — take the run from the start task to the last send, at the default render budget; both
are killed with ``kill -9`` at about a third and two thirds of the walk, and started again. Beat's part
runs here: the sends' sweeps every half second and the runs' reconcile task every five seconds with a
ten-second stall threshold, so a chain of steps broken by a kill resumes within seconds.

Passes when the run is ``finished``, no member is left ``planned``, the run's books balance, every
delivery is ``sent``, and the stub holds exactly one message per delivery (0 duplicates, 0 lost). Needs
DATABASE_URL / REDIS_URL (``make chaos`` provides test servers).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from chaos.sends import _sweep_until, django_setup, provider_env, start_stub, stub_state

_STALLED_AFTER_SECONDS = 10
_RECONCILE_EVERY_SECONDS = 5.0


def shoppers_create(*, count: int, tag: str) -> int:
    """``count`` shoppers reachable by e-mail and SMS, tagged ``attributes.drill = tag``, in one statement."""
    from django.db import connection

    from personalization.models import Profile

    sql = (
        f'INSERT INTO "{Profile._meta.db_table}" (user_id, email, phone, first_name, locale, timezone, '  # noqa: S608
        "attributes, consent_onsite, consent_email, consent_sms, consent_push, last_cart, orders_count, "
        "total_revenue, engagement, onsite_seq, created_at, updated_at) "
        "SELECT %s || i, %s || i || '@example.com', '+337' || lpad(i::text, 8, '0'), '', '', '', "
        "jsonb_build_object('drill', %s::text), true, true, true, true, '{}', 0, 0, '{}', 0, now(), now() "
        "FROM generate_series(1, %s) AS i"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [f"runs-{tag}-", f"runs-{tag}-", tag, count])
        return int(cursor.rowcount)


def campaign_create(*, tag: str) -> Any:
    """An active one-off scheduled SMS campaign for the tagged shoppers, due now."""
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.models import Campaign, Template, TemplateLocalization, Variant
    from personalization.models import Segment

    segment = Segment.objects.create(name=f"drill {tag}", rules=f'attributes.drill == "{tag}"')
    template = Template.objects.create(name=f"drill {tag}", channel="sms")
    TemplateLocalization.objects.create(
        template=template, locale="en", body_text=f"Drill {tag}: {{{{ profile.user_id }}}}"
    )
    campaign = Campaign.objects.create(
        name=f"chaos runs {tag}",
        status=Campaign.Status.ACTIVE,
        kind=Campaign.Kind.SCHEDULED,
        trigger="",
        segment=segment,
        channels=["sms"],
        channel_strategy="fixed",
        exit_events=[],
        send_at=timezone.now() - timedelta(seconds=1),
    )
    Variant.objects.create(campaign=campaign, name="A", weight=1, sms_template=template)
    return campaign


def purge_queues() -> None:
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("default", "sms")


def _reconcile_until(stop: threading.Event) -> None:
    """Beat's reconcile entry, every few seconds (the workers run it, as they would beat's)."""
    from delivery.tasks import send_runs_reconcile_task

    while not stop.wait(_RECONCILE_EVERY_SECONDS):
        send_runs_reconcile_task.delay()


def books(*, campaign_id: int) -> dict[str, Any]:
    """The run's row, its members by state and its deliveries by status."""
    from delivery import runs
    from delivery.models import SendRun, SendRunMember
    from interventions.models import Delivery

    run = SendRun.objects.filter(campaign_id=campaign_id).first()
    if run is None:
        return {"state": "none", "members": {}, "deliveries": {}, "cursor": 0, "audience": 0}
    members = Counter(SendRunMember.objects.filter(run=run).values_list("state", flat=True))
    deliveries = Counter(
        Delivery.objects.filter(intervention__campaign_id=campaign_id).values_list("status", flat=True)
    )
    return {
        "run": run,
        "state": run.state,
        "audience": run.audience_size or 0,
        # Members walked: decided or skipped (the chunks walk side by side, each from its own cursor).
        "cursor": run.decided + sum(run.skipped.values()),
        "members": dict(members),
        "deliveries": dict(deliveries),
        "balanced": runs.send_run_books(run=run).balanced,
    }


def table(rows: list[tuple[str, object]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos runs", description=__doc__)
    parser.add_argument("--shoppers", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="threads of the sends' worker")
    parser.add_argument("--delay", type=float, default=0.02, help="stub answer time, seconds")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)

    stub, stub_url = start_stub(delay=args.delay)
    env = {
        **provider_env(stub_url),
        "SEND_RUN_STALLED_AFTER_SECONDS": str(_STALLED_AFTER_SECONDS),
        # The sends drill's 3 s would re-publish the whole backlog every 3 s (100,000 deliveries queue
        # faster than they are sent) and ask the provider about sends merely slow on a loaded machine.
        "NOTIFICATION_REQUEUE_AFTER_SECONDS": "30",
        "NOTIFICATION_SENDING_TIMEOUT_SECONDS": "30",
    }
    django_setup(env)
    import os

    from django.conf import settings

    from chaos.worker import CeleryWorker
    from delivery.tasks import send_run_start_task

    tag = uuid.uuid4().hex[:8]
    log_dir = Path(tempfile.mkdtemp(prefix="chaos-runs-"))
    worker_env = {
        **env,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
        "DEBUG": "false",
    }
    workers = [
        CeleryWorker(
            env=worker_env, log_path=log_dir / "steps.log", queues="default", concurrency=2, name="runs"
        ),
        CeleryWorker(
            env=worker_env,
            log_path=log_dir / "sends.log",
            queues="sms",
            concurrency=args.concurrency,
            name="sends",
        ),
    ]
    stop = threading.Event()
    kills: list[str] = []
    timings: dict[str, float] = {}
    try:
        began = time.monotonic()
        created = shoppers_create(count=args.shoppers, tag=tag)
        campaign = campaign_create(tag=tag)
        timings["shoppers created"] = time.monotonic() - began
        purge_queues()
        for worker in workers:
            worker.start()
        started = time.monotonic()
        send_run_start_task.delay(campaign_id=campaign.pk)
        threads = [
            threading.Thread(target=_sweep_until, args=(stop,), daemon=True),
            threading.Thread(target=_reconcile_until, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        kill_at = [(n + 1) / (args.kills + 1) for n in range(args.kills)]
        deadline = started + args.timeout
        current = books(campaign_id=campaign.pk)
        while time.monotonic() < deadline:
            current = books(campaign_id=campaign.pk)
            walked = current["cursor"] / current["audience"] if current["audience"] else 0.0
            if current["cursor"] > 0 and "start task to first batch" not in timings:
                timings["start task to first batch"] = time.monotonic() - started
            if current["state"] == "finished" and "start task to run finished" not in timings:
                timings["start task to run finished"] = time.monotonic() - started
            if len(kills) < args.kills and walked >= kill_at[len(kills)]:
                for worker in workers:
                    worker.kill9()
                kills.append(f"{walked:.0%} walked, deliveries {current['deliveries']}")
                print(f"kill -9 #{len(kills)} of both workers: {kills[-1]}", flush=True)
                for worker in workers:
                    worker.start()
            pending = current["deliveries"].get("queued", 0) + current["deliveries"].get("sending", 0)
            if current["state"] in ("finished", "cancelled", "failed") and not pending:
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join(30)

        from interventions.models import Intervention

        owed = {
            f"Drill {tag}: {user_id}"
            for user_id in Intervention.objects.filter(campaign_id=campaign.pk)
            .exclude(status=Intervention.Status.SUPPRESSED)
            .values_list("user_id", flat=True)
        }
        received = Counter(m["body"] for m in stub_state(stub_url)["sms"] if m["body"].startswith("Drill "))
        received = Counter({body: n for body, n in received.items() if body in owed})
        duplicates = sum(n - 1 for n in received.values() if n > 1)
        lost = len(owed - set(received))
        sent = current["deliveries"].get("sent", 0)
        rows: list[tuple[str, object]] = [
            ("shoppers created", created),
            ("audience snapshotted", current["audience"]),
            ("run state", current["state"]),
            ("members by state", current["members"]),
            ("books balance", current.get("balanced")),
            ("suppressed by reason", current["run"].suppressed if "run" in current else {}),
            ("deliveries by status", current["deliveries"]),
            ("kill -9 (both workers)", len(kills)),
            *[(f"  kill #{n + 1}", text) for n, text in enumerate(kills)],
            ("messages at the stub", sum(received.values())),
            ("duplicate provider calls", duplicates),
            ("deliveries never sent", lost),
            *[(f"seconds: {name}", round(value, 1)) for name, value in timings.items()],
            ("seconds: start task to last send", round(elapsed, 1)),
            ("sends per second", round(sent / elapsed) if elapsed else 0),
        ]
        print(table(rows), flush=True)
        summary = {
            "shoppers": created,
            "run": current["state"],
            "planned_left": current["members"].get("planned", 0),
            "books_balance": current.get("balanced"),
            "kills": len(kills),
            "sent": sent,
            "duplicates": duplicates,
            "lost": lost,
            "seconds": round(elapsed, 1),
        }
        print(json.dumps(summary), flush=True)
        ok = (
            current["state"] == "finished"
            and current["members"].get("planned", 0) == 0
            and bool(current.get("balanced"))
            and current["audience"] == created
            and sent == len(owed)
            and duplicates == 0
            and lost == 0
            and len(kills) == args.kills
        )
        print("PASS" if ok else f"FAIL (worker logs: {log_dir})", flush=True)
        return 0 if ok else 1
    finally:
        stop.set()
        for worker in workers:
            worker.kill9()
        stub.terminate()
        stub.wait(10)


if __name__ == "__main__":
    sys.exit(main())
