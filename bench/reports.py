"""Benchmark: how long a campaign report and a CSV/XLSX export take on a large campaign.

    python -m bench.reports [--interventions 100000] [--events 30000] [--orders 5000]

Writes one campaign (two variants, 10 % holdout) with that many interventions, tracking events and
attributed orders in ONE transaction, times the report (the three grouped queries plus the statistics),
the floor under it (a bare ``count(*)`` over the same rows) and both exports, then rolls everything back.
Prints JSON. The issue's report is 10M events (``--events 10000000``: minutes on two cores); ``make bench``
runs a smaller one and says how many rows it had.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import time
import uuid
from decimal import Decimal
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__)
    parser.add_argument("--interventions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=30_000, help="tracking events (the report's size)")
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "intervention_engine.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from campaigns.models import Campaign, Variant
    from interventions.models import Intervention
    from personalization.models import Profile
    from tracking import exports
    from tracking.models import Conversion, TrackingEvent
    from tracking.reports import ReportPeriod, campaign_report

    call_command("migrate", interactive=False, verbosity=0)
    rng = random.Random(args.seed)
    result: dict[str, Any] = {"interventions": args.interventions}
    with transaction.atomic():
        tag = uuid.uuid4().hex[:8]
        campaign = Campaign.objects.create(
            name=f"bench-report-{tag}", trigger="bench", status="active", holdout_percent=10
        )
        variants = [
            Variant.objects.create(campaign=campaign, name="A", weight=1),
            Variant.objects.create(campaign=campaign, name="Control", weight=1, is_control=True),
        ]
        profile = Profile.objects.create(user_id=f"bench-report-{tag}")
        now = timezone.now()
        rows = []
        for number in range(args.interventions):
            user_id = f"br-{tag}-{number}"
            # Deterministic per shopper, like the real assignment: one shopper, one group.
            holdout = rng.random() < 0.10
            rows.append(
                Intervention(
                    campaign=campaign,
                    variant=variants[number % 2],
                    profile=profile,
                    user_id=user_id,
                    trigger_event_id=f"{tag}-{number}",
                    trigger="bench",
                    status="suppressed" if holdout else "delivered",
                    suppression_reason="holdout" if holdout else "",
                    is_holdout=holdout,
                    delivered_at=None if holdout else now,
                )
            )
        Intervention.objects.bulk_create(rows, batch_size=5000)
        # The tracking events in SQL (millions in seconds): spread over the sent interventions, of the four
        # types the API records.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {TrackingEvent._meta.db_table}
                    (event_id, type, source, intervention_id, user_id, channel, occurred_at, received_at,
                     properties)
                SELECT gen_random_uuid()::text,
                       (ARRAY['displayed', 'opened', 'clicked', 'dismissed'])[1 + floor(random() * 4)::int],
                       'api', i.id, i.user_id, '', %s, %s, '{{}}'::jsonb
                FROM (SELECT id, user_id FROM {Intervention._meta.db_table}
                      WHERE campaign_id = %s AND NOT is_holdout) i,
                     generate_series(1, %s) g
                LIMIT %s
                """,  # noqa: S608  (names from the models)
                [
                    now,
                    now,
                    campaign.pk,
                    -(-args.events // max(1, sum(not r.is_holdout for r in rows))),
                    args.events,
                ],
            )
            result["events"] = cursor.rowcount
        Conversion.objects.bulk_create(
            [
                Conversion(
                    order_id=uuid.uuid4().hex,
                    user_id=row.user_id,
                    revenue=Decimal(rng.randint(10, 200)),
                    currency="EUR",
                    occurred_at=now,
                    intervention=row,
                    campaign=campaign,
                    variant=row.variant,
                    is_holdout=row.is_holdout,
                )
                for row in rng.sample(rows, min(args.orders, len(rows)))
            ],
            batch_size=5000,
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE campaigns_intervention, tracking_trackingevent, tracking_conversion")

        timings = []
        for _ in range(3):
            started = time.perf_counter()
            report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())
            timings.append(time.perf_counter() - started)
        result["report_seconds"] = {"min": round(min(timings), 3), "max": round(max(timings), 3)}
        # The floor: a bare count(*) over the same rows (the campaign's interventions, their tracking
        # events, its orders), best of three as the report's.
        floor = []
        interventions, events = Intervention._meta.db_table, TrackingEvent._meta.db_table
        counts = (  # names from the models
            f"SELECT count(*) FROM {interventions} WHERE campaign_id = %s",  # noqa: S608
            f"SELECT count(*) FROM {events} t JOIN {interventions} i ON i.id = t.intervention_id"  # noqa: S608
            " WHERE i.campaign_id = %s",
            f"SELECT count(*) FROM {Conversion._meta.db_table} WHERE campaign_id = %s",  # noqa: S608
        )
        with connection.cursor() as cursor:
            for _ in range(3):
                started = time.perf_counter()
                for query in counts:
                    cursor.execute(query, [campaign.pk])
                    cursor.fetchone()
                floor.append(time.perf_counter() - started)
        result["count_seconds"] = {"min": round(min(floor), 3), "max": round(max(floor), 3)}
        result["funnel"] = report.funnel
        result["srm_mismatch"] = report.srm.mismatch

        started = time.perf_counter()
        size = sum(len(chunk) for chunk in exports.csv_stream(period=ReportPeriod(), campaign_id=campaign.pk))
        result["csv_seconds"] = round(time.perf_counter() - started, 3)
        result["csv_bytes"] = size
        started = time.perf_counter()
        buffer = io.BytesIO()
        exports.xlsx_write(target=buffer, period=ReportPeriod(), campaign_id=campaign.pk)
        result["xlsx_seconds"] = round(time.perf_counter() - started, 3)
        transaction.set_rollback(True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
