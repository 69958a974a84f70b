"""Fault tests with a real Celery worker process (the full 1,000-send drill is `make chaos`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from chaos.provider_stub import ProviderStub
from chaos.worker import CeleryWorker
from interventions.models import Delivery
from notifications.services import deliveries_enqueue
from notifications.sweeps import deliveries_requeue_due, deliveries_settle_stuck
from tests.processes import database_url

pytestmark = pytest.mark.django_db(transaction=True)

PRIMARY_SID = "AC" + "0" * 32
SECONDARY_SID = "AC" + "1" * 32


@pytest.fixture
def worker_env(settings: Any, provider_stub: ProviderStub) -> dict[str, str]:
    """The same provider settings for the worker (environment) and this process (the sweeps)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "intervention_engine.test_settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "PUBLIC_URL": "https://shop.example",
        "TWILIO_ACCOUNT_SID": PRIMARY_SID,
        "TWILIO_AUTH_TOKEN": "primary-token",
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_BASE": provider_stub.url,
        "TWILIO_SECONDARY_ACCOUNT_SID": SECONDARY_SID,
        "TWILIO_SECONDARY_AUTH_TOKEN": "secondary-token",
        "TWILIO_SECONDARY_FROM": "+15005550007",
        "TWILIO_SECONDARY_API_BASE": provider_stub.url,
        "TWILIO_TIMEOUT": "2",
        "FCM_PROJECT_ID": "ie-test",
        "FCM_ENDPOINT": provider_stub.url + "/v1/projects/{}/messages:send",
        "FCM_TIMEOUT": "2",
        "NOTIFICATION_PROVIDERS_SMS": "twilio,twilio_secondary",
        "NOTIFICATION_BACKOFF_BASE_SECONDS": "0.2",
        "NOTIFICATION_BACKOFF_MAX_SECONDS": "1",
        "NOTIFICATION_MAX_ATTEMPTS": "10",
        "LOG_LEVEL": "WARNING",
    }
    for key, value in env.items():
        if key.startswith(("TWILIO_", "FCM_")):
            setattr(settings, key, float(value) if key.endswith("TIMEOUT") else value)
    settings.PUBLIC_URL = env["PUBLIC_URL"]
    settings.NOTIFICATION_PROVIDERS = {
        "email": ["email"],
        "sms": ["twilio", "twilio_secondary"],
        "push": ["fcm"],
    }
    settings.NOTIFICATION_RATE_LIMITS = {}
    settings.NOTIFICATION_SENDING_TIMEOUT_SECONDS = 2
    settings.NOTIFICATION_REQUEUE_AFTER_SECONDS = 2
    # Messages other tests published for rows that no longer exist would only slow the worker down.
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).delete("email", "sms", "push")
    return env


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[CeleryWorker]:
    process = CeleryWorker(env=worker_env, log_path=tmp_path / "worker.log", concurrency=8)
    yield process
    process.kill9()  # the test is over; a warm shutdown would only wait for retry timers


def wait_until_settled(ids: list[Any], *, timeout: float = 60.0, sweep: bool = True) -> dict[str, int]:
    """Run beat's sweeps (here, every half second) until no delivery is queued or sending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True))
        if not statuses.get("queued") and not statuses.get("sending"):
            return dict(statuses)
        if sweep:
            deliveries_requeue_due()
            deliveries_settle_stuck()
        time.sleep(0.5)
    return dict(Counter(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)))


def test_it_loses_and_duplicates_nothing_when_the_worker_is_killed(
    worker: CeleryWorker, provider_stub: ProviderStub, make_delivery: Callable[..., Delivery]
):
    # given 50 SMS and a provider answering in 50 ms, so the kill lands mid-stream
    provider_stub.fault("twilio", "ok", delay=0.05)
    ids = [make_delivery("sms").pk for _ in range(50)]
    worker.start()
    deliveries_enqueue(delivery_ids=ids)

    # when the worker is killed with SIGKILL part-way, then started again
    deadline = time.monotonic() + 30
    while len(provider_stub.sms) < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.kill9()
    sent_before_restart = len(provider_stub.sms)
    worker.start()
    statuses = wait_until_settled(ids)

    # then every message reached Twilio exactly once
    bodies = Counter(sms["body"] for sms in provider_stub.sms)
    assert 0 < sent_before_restart < 50
    assert statuses == {"sent": 50}
    assert len(bodies) == 50
    assert max(bodies.values()) == 1
    assert set(Delivery.objects.filter(id__in=ids).values_list("provider_message_id", flat=True)) == {
        sms["sid"] for sms in provider_stub.sms
    }


def test_it_retries_fails_over_and_fails_permanently_with_a_real_worker(
    worker: CeleryWorker, provider_stub: ProviderStub, make_delivery: Callable[..., Delivery]
):
    # given the primary Twilio account is down, FCM is down for its next 3 requests,
    # and one shopper's number is invalid
    provider_stub.fault("twilio", "error", status=503, account=PRIMARY_SID)
    sms = [make_delivery("sms").pk for _ in range(3)]
    invalid = make_delivery("sms", phone="+15550009999").pk
    worker.start()
    deliveries_enqueue(delivery_ids=[*sms, invalid])
    wait_until_settled([*sms, invalid], sweep=False)
    provider_stub.fault("fcm", "error", status=503, times=3)
    push = make_delivery("push").pk

    # when
    deliveries_enqueue(delivery_ids=[push])
    wait_until_settled([push], sweep=False)

    # then SMS went out through the secondary account
    rows = {row.pk: row for row in Delivery.objects.filter(id__in=[*sms, invalid, push])}
    assert {rows[pk].provider for pk in sms} == {"twilio_secondary"}
    assert {rows[pk].status for pk in sms} == {"sent"}
    assert {m["account_sid"] for m in provider_stub.sms} == {SECONDARY_SID}
    # the invalid number failed on its first attempt and was never retried
    assert rows[invalid].status == "failed"
    assert rows[invalid].attempts == 1
    assert rows[invalid].error_kind == "permanent"
    # the push was retried through the outage, then delivered once
    assert rows[push].status == "sent"
    assert rows[push].attempts == 4
    assert len(provider_stub.push) == 1
