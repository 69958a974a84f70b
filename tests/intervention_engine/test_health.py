from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "scrape-token-for-tests-0123456789"


@pytest.fixture
def operator(settings) -> Client:
    """A scraper sending the configured METRICS_TOKEN."""
    settings.METRICS_TOKEN = METRICS_TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")


def test_it_reports_live() -> None:
    response = Client().get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_is_ready_when_every_component_answers(operator) -> None:
    response = operator.get("/health/ready")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert {name: c["status"] for name, c in body["components"].items()} == {
        "database": "ok",
        "redis": "ok",
        "kafka": "ok",
    }


def test_it_reports_a_stopped_redis_as_down(settings, redis_server, operator) -> None:
    # given a readiness check pointed at a real Redis that is up
    url, process = redis_server
    settings.REDIS_URL = url
    assert operator.get("/health/ready").json()["components"]["redis"]["status"] == "ok"

    # when that Redis stops
    process.terminate()
    process.wait(10)
    response = operator.get("/health/ready")
    anonymous = Client().get("/health/ready")

    # then readiness is 503 and names Redis, and only Redis
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["failed"] == ["redis"]
    assert body["components"]["redis"]["status"] == "down"
    assert "Connection" in body["components"]["redis"]["error"]
    assert body["components"]["database"]["status"] == "ok"
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "down"})


def test_it_reports_an_unreachable_kafka_as_down(settings, operator) -> None:
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5

    response = operator.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failed"] == ["kafka"]


def test_it_serves_prometheus_metrics(operator) -> None:
    response = operator.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"ie_outbox_published_total" in response.content


def test_it_tells_an_anonymous_caller_only_whether_it_is_ready() -> None:
    response = Client().get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/metrics", "/ws/stats"])
def test_it_serves_operator_endpoints_to_operators_only(settings, api_client, marketer, path) -> None:
    # given a scrape token, API keys with and without the metrics scope, and a staff user
    settings.METRICS_TOKEN = METRICS_TOKEN
    staff = Client()
    staff.force_login(marketer)

    # when each asks
    anonymous = Client().get(path)
    wrong_token = Client(HTTP_AUTHORIZATION="Bearer guessed").get(path)
    other_scope = api_client(scopes=["events"]).get(path)
    answers = [
        Client(HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").get(path),
        api_client(scopes=["metrics"]).get(path),
        staff.get(path),
    ]

    # then only operators are answered; the others get the API's error shape
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert set(anonymous.json()["error"]) == {"code", "message", "details"}
    assert (wrong_token.status_code, other_scope.status_code) == (403, 403)
    assert [r.status_code for r in answers] == [200, 200, 200]


def test_it_refuses_operator_endpoints_to_a_shopper_session(client) -> None:
    # given a logged-in user who is not staff
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("shopper", password="a-long-test-password"))

    # when / then
    assert client.get("/metrics").status_code == 403
    assert "components" not in client.get("/health/ready").json()
