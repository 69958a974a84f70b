from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_it_reports_live() -> None:
    response = Client().get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_is_ready_when_every_component_answers() -> None:
    response = Client().get("/health/ready")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert {name: c["status"] for name, c in body["components"].items()} == {
        "database": "ok",
        "redis": "ok",
        "kafka": "ok",
    }


def test_it_reports_a_stopped_redis_as_down(settings, redis_server) -> None:
    # given a readiness check pointed at a real Redis that is up
    url, process = redis_server
    settings.REDIS_URL = url
    assert Client().get("/health/ready").json()["components"]["redis"]["status"] == "ok"

    # when that Redis stops
    process.terminate()
    process.wait(10)
    response = Client().get("/health/ready")

    # then readiness is 503 and names Redis, and only Redis
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["failed"] == ["redis"]
    assert body["components"]["redis"]["status"] == "down"
    assert "Connection" in body["components"]["redis"]["error"]
    assert body["components"]["database"]["status"] == "ok"


def test_it_reports_an_unreachable_kafka_as_down(settings) -> None:
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5

    response = Client().get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failed"] == ["kafka"]


def test_it_serves_prometheus_metrics() -> None:
    response = Client().get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"ie_outbox_published_total" in response.content
