"""Reads over the provider calls: the health view's figures. Deliveries are read through
``interventions.selectors``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q

from notifications.models import ProviderAttempt


def provider_health(*, since: datetime) -> list[dict[str, Any]]:
    """Per provider since ``since``: calls, success rate, p50/p95 latency and the last errors."""
    rows = (
        ProviderAttempt.objects.filter(created_at__gte=since)
        .values("provider", "channel")
        .annotate(
            calls=Count("id"),
            sent=Count("id", filter=Q(outcome=ProviderAttempt.Outcome.SENT)),
            transient=Count("id", filter=Q(outcome=ProviderAttempt.Outcome.TRANSIENT)),
            permanent=Count("id", filter=Q(outcome=ProviderAttempt.Outcome.PERMANENT)),
            unknown=Count("id", filter=Q(outcome=ProviderAttempt.Outcome.UNKNOWN)),
        )
        .order_by("channel", "provider")
    )
    health = []
    for row in rows:
        latencies = _percentiles(provider=row["provider"], since=since)
        errors = list(
            ProviderAttempt.objects.filter(created_at__gte=since, provider=row["provider"])
            .exclude(outcome=ProviderAttempt.Outcome.SENT)
            .order_by("-created_at")
            .values("created_at", "outcome", "error")[:5]
        )
        health.append(
            {
                **row,
                "success_rate": row["sent"] / row["calls"] if row["calls"] else None,
                "p50_ms": latencies[0],
                "p95_ms": latencies[1],
                "last_errors": errors,
            }
        )
    return health


def _percentiles(*, provider: str, since: datetime) -> tuple[float | None, float | None]:
    from django.db import connection

    table = ProviderAttempt._meta.db_table
    sql = f"""
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FROM {table} WHERE provider = %s AND created_at >= %s
    """  # noqa: S608  (a fixed table name; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [provider, since])
        p50, p95 = cursor.fetchone() or (None, None)
    return p50, p95
