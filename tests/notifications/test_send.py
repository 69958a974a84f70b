"""The send ledger through the real anymail/Django SMTP, twilio and firebase-admin clients, against local
servers speaking their protocols."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

import pytest
import redis
from django.utils import timezone

from chaos.provider_stub import ProviderStub, SmtpStub
from interventions.models import Delivery
from messaging.models import OutboxMessage
from notifications.models import ProviderAttempt
from notifications.services import delivery_send
from notifications.sweeps import deliveries_settle_stuck
from personalization.models import PushToken
from tests.fixtures import send_until_settled

pytestmark = pytest.mark.django_db


def event_types(delivery: Delivery) -> list[str]:
    return [
        row.payload["type"]
        for row in OutboxMessage.objects.order_by("id")
        if row.payload.get("delivery_id") == str(delivery.pk)
    ]


def test_it_sends_an_email_with_one_click_unsubscribe(providers, smtp_stub: SmtpStub, make_delivery):
    # given
    delivery = make_delivery("email")

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    assert outcome == "sent"
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempts == 1
    [message] = smtp_stub.messages
    assert message["To"] == delivery.intervention.profile.email
    assert message["Message-ID"] == f"<{delivery.pk}@intervention-engine>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].strip().startswith("<https://shop.example/u/")
    assert "mailto:" in message["List-Unsubscribe"]
    html = next(part for part in message.walk() if part.get_content_type() == "text/html").get_payload(
        decode=True
    )
    assert b"https://shop.example/t/o/" in html  # open pixel
    assert b'href="https://shop.example/cart"' not in html  # links go through the signed redirect
    assert event_types(delivery) == ["delivery.sent"]


def test_it_sends_an_sms_through_the_twilio_client(providers, provider_stub: ProviderStub, make_delivery):
    # given
    delivery = make_delivery("sms")

    # when
    delivery_send(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    [sms] = provider_stub.sms
    assert delivery.status == Delivery.Status.SENT
    assert delivery.provider == "twilio"
    assert delivery.provider_message_id == sms["sid"]
    assert sms["to"] == delivery.intervention.profile.phone
    assert sms["body"].startswith("Your cart is waiting")
    assert "https://shop.example/t/c/" in sms["body"]


def test_it_sends_a_push_through_firebase_admin(providers, provider_stub: ProviderStub, make_delivery):
    # given
    delivery = make_delivery("push", push_tokens=("tok-a", "tok-b"))

    # when
    delivery_send(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert sorted(p["message"]["token"] for p in provider_stub.push) == ["tok-a", "tok-b"]
    assert provider_stub.push[0]["message"]["notification"]["title"] == "You left something behind"
    assert provider_stub.push[0]["message"]["data"]["delivery_id"] == str(delivery.pk)
    assert delivery.provider_message_id.startswith("projects/ie-test/messages/")


def test_it_never_calls_the_provider_twice_for_one_delivery(providers, provider_stub, make_delivery):
    # given a delivery already sent
    delivery = make_delivery("sms")
    delivery_send(delivery_id=delivery.pk)

    # when the task is delivered again (redelivery, duplicate enqueue)
    second = delivery_send(delivery_id=delivery.pk)

    # then
    assert second == "skipped"
    assert len(provider_stub.sms) == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1


def test_it_retries_a_transient_error_then_succeeds(providers, provider_stub, make_delivery):
    # given Twilio answers 503 twice
    provider_stub.fault("twilio", "error", status=503, times=2)
    delivery = make_delivery("sms")

    # when
    outcomes = send_until_settled(delivery)

    # then
    assert outcomes == ["retry", "retry", "sent"]
    assert delivery.status == Delivery.Status.SENT
    assert delivery.attempts == 3
    assert len(provider_stub.sms) == 1
    assert list(
        ProviderAttempt.objects.filter(delivery_id=delivery.pk)
        .order_by("id")
        .values_list("outcome", flat=True)
    ) == ["transient", "transient", "sent"]


def test_it_retries_when_twilio_cannot_be_reached(providers, provider_stub, make_delivery):
    # given nothing listens where Twilio should be
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        providers.TWILIO_API_BASE = f"http://127.0.0.1:{closed.getsockname()[1]}"
    delivery = make_delivery("sms")

    # when
    first = delivery_send(delivery_id=delivery.pk)
    providers.TWILIO_API_BASE = provider_stub.url  # Twilio is back
    outcomes = send_until_settled(delivery)

    # then the refused connection was a transient error, and the message went out once
    assert first == "retry"
    assert outcomes == ["sent"]
    assert len(provider_stub.sms) == 1
    assert ProviderAttempt.objects.filter(delivery_id=delivery.pk, outcome="transient").count() == 1


def test_it_gives_up_after_the_attempt_limit(providers, provider_stub, make_delivery):
    # given FCM is down for good
    providers.NOTIFICATION_MAX_ATTEMPTS = 3
    provider_stub.fault("fcm", "error", status=503)
    delivery = make_delivery("push")

    # when
    outcomes = send_until_settled(delivery)

    # then
    assert outcomes == ["retry", "retry", "failed"]
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.error_kind == "transient"
    assert event_types(delivery) == ["delivery.failed"]


def test_it_fails_an_invalid_number_at_once_and_suppresses_it(providers, provider_stub, make_delivery):
    # given a number Twilio rejects with 21211
    delivery = make_delivery("sms", phone="+15550001234")

    # when
    outcomes = send_until_settled(delivery)

    # then failed once, never retried, the number no longer used
    assert outcomes == ["failed"]
    assert delivery.attempts == 1
    assert delivery.error_kind == "permanent"
    assert delivery.provider_response["code"] == 21211
    assert delivery.intervention.profile.__class__.objects.get(
        pk=delivery.intervention.profile_id
    ).phone_suppressed_at
    assert provider_stub.state.requests["twilio"] == 1


def test_it_fails_a_hard_bounce_and_suppresses_the_address(providers, smtp_stub, make_delivery):
    # given an address the SMTP server refuses with 550
    delivery = make_delivery("email", email="bounce-me@example.com")

    # when
    outcomes = send_until_settled(delivery)

    # then
    assert outcomes == ["failed"]
    profile = delivery.intervention.profile
    profile.refresh_from_db()
    assert profile.email_suppressed_at is not None
    assert smtp_stub.messages == []


def test_it_retries_a_temporary_smtp_failure(providers, smtp_stub, make_delivery):
    # given the SMTP server answers 451 once
    smtp_stub.fault("error", status=451, times=1)
    delivery = make_delivery("email")

    # when
    outcomes = send_until_settled(delivery)

    # then
    assert outcomes == ["retry", "sent"]
    assert len(smtp_stub.messages) == 1


def test_it_fails_over_to_the_secondary_provider(providers, provider_stub, make_delivery):
    # given the primary Twilio account's server is down and a secondary is configured
    providers.TWILIO_API_BASE = "http://127.0.0.1:9"  # discard port: connection refused
    providers.TWILIO_SECONDARY_ACCOUNT_SID = "AC" + "1" * 32
    providers.TWILIO_SECONDARY_AUTH_TOKEN = "secondary-token"
    providers.TWILIO_SECONDARY_FROM = "+15005550007"
    providers.TWILIO_SECONDARY_API_BASE = provider_stub.url
    providers.NOTIFICATION_PROVIDERS = {"sms": ["twilio", "twilio_secondary"]}
    delivery = make_delivery("sms")

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    assert outcome == "sent"
    assert delivery.provider == "twilio_secondary"
    assert provider_stub.sms[0]["account_sid"] == "AC" + "1" * 32
    assert provider_stub.sms[0]["from"] == "+15005550007"


def test_it_uses_the_secondary_when_the_primary_is_at_its_rate_limit(providers, provider_stub, make_delivery):
    # given one send per 100 s allowed on the primary
    providers.TWILIO_SECONDARY_ACCOUNT_SID = "AC" + "1" * 32
    providers.TWILIO_SECONDARY_AUTH_TOKEN = "secondary-token"
    providers.TWILIO_SECONDARY_FROM = "+15005550007"
    providers.TWILIO_SECONDARY_API_BASE = provider_stub.url
    providers.NOTIFICATION_PROVIDERS = {"sms": ["twilio", "twilio_secondary"]}
    providers.NOTIFICATION_RATE_LIMITS = {"twilio": 0.01}
    redis.Redis.from_url(providers.REDIS_URL).delete("ie:ratelimit:twilio")
    first, second = make_delivery("sms"), make_delivery("sms")

    # when
    delivery_send(delivery_id=first.pk)
    delivery_send(delivery_id=second.pk)

    # then
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.provider, second.provider) == ("twilio", "twilio_secondary")
    assert second.status == Delivery.Status.SENT


def test_it_marks_unknown_on_a_timeout_and_settles_by_asking_twilio(providers, provider_stub, make_delivery):
    # given Twilio accepts the message but answers after the client gave up
    provider_stub.fault("twilio", "ok", delay=1.5, times=1)
    delivery = make_delivery("sms")

    # when
    outcome = delivery_send(delivery_id=delivery.pk)
    time.sleep(0.7)  # the stub finishes accepting the late message
    providers.NOTIFICATION_SENDING_TIMEOUT_SECONDS = 0
    counts = deliveries_settle_stuck()

    # then it was never sent twice, and the ledger knows the message Twilio has
    delivery.refresh_from_db()
    assert outcome == "unknown"
    assert counts == {"sent": 1, "queued": 0, "unknown": 0}
    assert delivery.status == Delivery.Status.SENT
    [sms] = provider_stub.sms
    assert delivery.provider_message_id == sms["sid"]


def test_it_queues_again_a_send_twilio_never_received(providers, provider_stub, make_delivery):
    # given a worker died after claiming the row, before calling Twilio
    delivery = make_delivery("sms")
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, attempts=1, sending_at=timezone.now() - timedelta(minutes=5)
    )

    # when
    counts = deliveries_settle_stuck()

    # then Twilio has no such message, so it is queued again and sent once
    assert counts["queued"] == 1
    assert send_until_settled(delivery) == ["sent"]
    assert len(provider_stub.sms) == 1


def test_it_leaves_an_interrupted_email_unknown_for_an_operator(providers, smtp_stub, make_delivery):
    # given a worker died during an SMTP send: SMTP has no lookup
    delivery = make_delivery("email")
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENDING, attempts=1, sending_at=timezone.now() - timedelta(minutes=5)
    )

    # when
    counts = deliveries_settle_stuck()

    # then
    delivery.refresh_from_db()
    assert counts["unknown"] == 1
    assert delivery.status == Delivery.Status.UNKNOWN
    assert smtp_stub.messages == []


def test_it_deactivates_an_unregistered_push_token(providers, provider_stub, make_delivery):
    # given one dead token and one live one
    delivery = make_delivery("push", push_tokens=("dead-1", "tok-live"))

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then the live device got it, the dead token is switched off
    assert outcome == "sent"
    tokens = dict(
        PushToken.objects.filter(profile_id=delivery.intervention.profile_id).values_list(
            "token", "is_active"
        )
    )
    assert tokens == {"dead-1": False, "tok-live": True}


def test_it_fails_a_push_when_every_token_is_dead(providers, provider_stub, make_delivery):
    # given
    delivery = make_delivery("push", push_tokens=("dead-1",))

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    assert outcome == "failed"
    assert delivery.error_kind == "permanent"
    assert not PushToken.objects.get(token="dead-1", profile_id=delivery.intervention.profile_id).is_active


def test_it_cancels_when_consent_was_withdrawn_after_the_decision(providers, smtp_stub, make_delivery):
    # given
    delivery = make_delivery("email", consent_email=False)

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    assert outcome == "cancelled"
    assert delivery.status == Delivery.Status.CANCELLED
    assert smtp_stub.messages == []
    assert event_types(delivery) == ["delivery.cancelled"]


def test_it_defers_a_send_to_the_end_of_quiet_hours(providers, provider_stub, make_delivery):
    # given quiet hours covering now in the shopper's zone
    zone = ZoneInfo("Asia/Tokyo")
    local_now = timezone.now().astimezone(zone)
    start = (local_now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local_now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    delivery = make_delivery("sms", timezone="Asia/Tokyo", quiet_hours_start=start, quiet_hours_end=end)

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then nothing is sent and the delivery waits, without spending an attempt
    delivery.refresh_from_db()
    assert outcome == "deferred"
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.attempts == 0
    expected = datetime.combine(
        local_now.date() + timedelta(days=1 if end < local_now.time() else 0), end, tzinfo=zone
    )
    assert delivery.next_attempt_at == expected
    assert provider_stub.sms == []


def test_quiet_hours_wrapping_midnight_are_understood():
    from notifications.channels import quiet_hours_end
    from personalization.models import Profile

    # given 22:00-08:00 in Paris, and 23:30 there
    profile = Profile(timezone="Europe/Paris", quiet_hours_start=dtime(22), quiet_hours_end=dtime(8))
    at = datetime(2026, 11, 28, 23, 30, tzinfo=ZoneInfo("Europe/Paris"))

    # when / then
    assert quiet_hours_end(profile=profile, at=at) == datetime(
        2026, 11, 29, 8, 0, tzinfo=ZoneInfo("Europe/Paris")
    )
    assert quiet_hours_end(profile=profile, at=at.replace(hour=12)) is None


def test_it_writes_development_email_to_a_file_a_person_can_read(settings, tmp_path, make_delivery):
    # given no EMAIL_URL: the file sink
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    settings.NOTIFICATION_PROVIDERS = {"email": ["email"]}
    delivery = make_delivery("email")

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then
    [written] = list(tmp_path.iterdir())
    text = written.read_text()
    assert outcome == "sent"
    assert "Subject: You left something behind" in text
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in text


def test_it_waits_for_the_rate_limit_without_spending_an_attempt(providers, provider_stub, make_delivery):
    # given one send per 100 s and no other provider
    providers.NOTIFICATION_RATE_LIMITS = {"twilio": 0.01}
    redis.Redis.from_url(providers.REDIS_URL).delete("ie:ratelimit:twilio")
    first, second = make_delivery("sms"), make_delivery("sms")

    # when
    outcomes = [delivery_send(delivery_id=first.pk), delivery_send(delivery_id=second.pk)]

    # then the second waits its turn in the table
    second.refresh_from_db()
    assert outcomes == ["sent", "throttled"]
    assert (second.status, second.attempts) == ("queued", 0)
    assert second.next_attempt_at > timezone.now() + timedelta(seconds=60)
    assert len(provider_stub.sms) == 1


def test_it_sends_a_batch_once_even_when_listed_twice(providers, provider_stub, make_delivery):
    # given three deliveries, one of them already sent, one listed twice
    from notifications.services import deliveries_send

    first, second, done = make_delivery("sms"), make_delivery("sms"), make_delivery("sms")
    delivery_send(delivery_id=done.pk)

    # when
    outcomes = deliveries_send(delivery_ids=[first.pk, second.pk, first.pk, done.pk])

    # then
    assert outcomes == {"sent": 2, "skipped": 2}
    assert len(provider_stub.sms) == 3
    assert set(Delivery.objects.filter(pk__in=[first.pk, second.pk]).values_list("attempts", flat=True)) == {
        1
    }


def test_it_writes_every_outcome_of_a_mixed_batch(providers, provider_stub, make_delivery):
    # given one batch: two good numbers, one Twilio rejects, one shopper who withdrew SMS consent
    from notifications.services import deliveries_send

    good = [make_delivery("sms"), make_delivery("sms")]
    rejected = make_delivery("sms", phone="+15550001234")
    withdrawn = make_delivery("sms", consent_sms=False)

    # when the batch is sent (its provider calls concurrently)
    outcomes = deliveries_send(delivery_ids=[d.pk for d in [*good, rejected, withdrawn]])

    # then each delivery has its own outcome, attempt rows and events, and nobody got two messages
    assert outcomes == {"sent": 2, "failed": 1, "cancelled": 1}
    for delivery in good:
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.provider) == ("sent", 1, "twilio")
        assert delivery.provider_message_id.startswith("SM")
        assert delivery.sent_at is not None
        assert event_types(delivery) == ["delivery.sent"]
    rejected.refresh_from_db()
    assert (rejected.status, rejected.error_kind) == ("failed", "permanent")
    assert event_types(rejected) == ["delivery.failed"]
    withdrawn.refresh_from_db()
    assert withdrawn.status == "cancelled"
    attempts = ProviderAttempt.objects.filter(delivery_id__in=[d.pk for d in [*good, rejected, withdrawn]])
    assert sorted(attempts.values_list("outcome", flat=True)) == ["permanent", "sent", "sent"]
    assert sorted(m["to"] for m in provider_stub.sms) == sorted(d.intervention.profile.phone for d in good)


def test_it_waits_visibly_when_a_provider_is_not_configured(providers, make_delivery):
    # given no Twilio credentials at all
    providers.TWILIO_ACCOUNT_SID = ""
    delivery = make_delivery("sms")

    # when the send is tried, and beat's sweep runs
    outcome = delivery_send(delivery_id=delivery.pk)
    deliveries_settle_stuck()

    # then nothing crashed and the ledger says why it waits
    delivery.refresh_from_db()
    assert outcome == "retry"
    assert delivery.status == Delivery.Status.QUEUED
    assert "TWILIO_ACCOUNT_SID" in delivery.last_error
