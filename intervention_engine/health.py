"""Liveness, readiness and metrics endpoints.

Readiness answers anyone with its status code and overall status only (what an orchestrator's probe needs).
An operator (staff session, METRICS_TOKEN, or an API key with the ``metrics`` scope) also gets every
dependency and the one that failed — PostgreSQL, Redis or Kafka — with its error. Metrics are for operators
only: they describe traffic, queues and failures.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.authentication import operator_access, operator_required
from core.observability import metrics_registry
from messaging.kafka import client_config


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def check_kafka() -> None:
    admin = AdminClient(client_config())
    admin.list_topics(timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "kafka": check_kafka,
}


def run_checks() -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            results[name] = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"status": "ok"}
        results[name]["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    components = run_checks()
    down = sorted(name for name, result in components.items() if result["status"] != "ok")
    body: dict[str, object] = {"status": "down" if down else "ok"}
    if operator_access(request):
        body.update(failed=down, components=components)
    return JsonResponse(body, status=503 if down else 200)


@require_GET
@operator_required
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
