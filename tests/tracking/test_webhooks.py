"""Provider webhooks through the real libraries: anymail (Postmark), Twilio signatures, push receipts."""

from __future__ import annotations

import base64
import uuid

import pytest
from twilio.request_validator import RequestValidator

from interventions.models import Delivery
from notifications.models import ProviderCallback
from personalization.models import Profile
from tracking.models import TrackingEvent

pytestmark = pytest.mark.django_db

TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "status-callback-token"
CALLBACK_URL = "http://testserver/api/v1/webhooks/twilio/status"


@pytest.fixture
def sent(make_delivery):
    def make(channel: str, **fields):
        delivery = make_delivery(channel, **fields)
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.SENT, provider_message_id=f"msg-{uuid.uuid4().hex}", provider="twilio"
        )
        delivery.refresh_from_db()
        return delivery

    return make


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_STATUS_CALLBACK_URL = CALLBACK_URL
    return settings


def twilio_post(client, params: dict[str, str], *, token: str = TWILIO_TOKEN):
    signature = RequestValidator(token).compute_signature(CALLBACK_URL, params)
    return client.post("/api/v1/webhooks/twilio/status", params, HTTP_X_TWILIO_SIGNATURE=signature)


def test_it_marks_an_sms_delivered_from_a_signed_twilio_callback(client, twilio_settings, sent):
    # given
    delivery = sent("sms")
    params = {
        "AccountSid": TWILIO_SID,
        "MessageSid": delivery.provider_message_id,
        "MessageStatus": "delivered",
    }

    # when
    response = twilio_post(client, params)

    # then
    delivery.refresh_from_db()
    assert response.status_code == 204
    assert delivery.status == Delivery.Status.DELIVERED
    assert TrackingEvent.objects.filter(delivery_id=delivery.pk, type="delivered").count() == 1


def test_it_refuses_a_forged_twilio_callback_and_writes_nothing(client, twilio_settings, sent):
    # given a callback signed with the wrong token
    delivery = sent("sms")
    params = {
        "AccountSid": TWILIO_SID,
        "MessageSid": delivery.provider_message_id,
        "MessageStatus": "delivered",
    }

    # when
    forged = twilio_post(client, params, token="not-the-token")
    unsigned = client.post("/api/v1/webhooks/twilio/status", params)

    # then
    assert (forged.status_code, unsigned.status_code) == (403, 403)
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT
    assert TrackingEvent.objects.count() == 0
    assert ProviderCallback.objects.count() == 0


def test_it_refuses_a_replayed_twilio_callback(client, twilio_settings, sent):
    # given a callback already processed
    delivery = sent("sms")
    params = {
        "AccountSid": TWILIO_SID,
        "MessageSid": delivery.provider_message_id,
        "MessageStatus": "undelivered",
        "ErrorCode": "30005",
    }
    assert twilio_post(client, params).status_code == 204

    # when it is replayed
    replay = twilio_post(client, params)

    # then
    assert replay.status_code == 409
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert Profile.objects.get(pk=delivery.intervention.profile_id).phone_suppressed_at is not None


@pytest.fixture
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:secret-words"}
    return settings


def postmark_post(client, payload: dict, *, credentials: str = "hook:secret-words"):
    auth = "Basic " + base64.b64encode(credentials.encode()).decode()
    return client.post(
        "/api/v1/webhooks/anymail/postmark/tracking/",
        payload,
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )


def test_it_records_an_esp_bounce_and_suppresses_the_address(client, anymail_settings, sent):
    # given a hard bounce reported by Postmark for a sent email
    delivery = sent("email")
    payload = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": delivery.provider_message_id,
        "Email": delivery.intervention.profile.email,
        "BouncedAt": "2026-11-28T10:00:00Z",
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Metadata": {"delivery_id": str(delivery.pk)},
    }

    # when, twice (the ESP retries)
    first = postmark_post(client, payload)
    second = postmark_post(client, payload)

    # then
    delivery.refresh_from_db()
    assert (first.status_code, second.status_code) == (200, 200)
    assert delivery.status == Delivery.Status.FAILED
    assert Profile.objects.get(pk=delivery.intervention.profile_id).email_suppressed_at is not None
    assert TrackingEvent.objects.filter(delivery_id=delivery.pk, type="bounced").count() == 1


def test_it_records_an_esp_open_and_refuses_a_webhook_without_the_secret(client, anymail_settings, sent):
    # given
    delivery = sent("email")
    payload = {
        "RecordType": "Open",
        "MessageID": delivery.provider_message_id,
        "Recipient": delivery.intervention.profile.email,
        "ReceivedAt": "2026-11-28T10:05:00Z",
        "Metadata": {"delivery_id": str(delivery.pk)},
    }

    # when
    forged = postmark_post(client, payload, credentials="hook:guessed")
    genuine = postmark_post(client, payload)

    # then
    assert forged.status_code in (400, 401, 403)
    assert genuine.status_code == 200
    assert TrackingEvent.objects.filter(delivery_id=delivery.pk, type="opened").count() == 1


def bounce_of(delivery: Delivery) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775808,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": delivery.provider_message_id,
        "Email": "someone@example.com",
        "BouncedAt": "2026-11-28T10:00:00Z",
        "Description": "The server was unable to deliver your message",
        "Metadata": {"delivery_id": str(delivery.pk)},
    }


def assert_nothing_written(delivery: Delivery) -> None:
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SENT
    profile = Profile.objects.get(pk=delivery.intervention.profile_id)
    assert (profile.email_suppressed_at, profile.phone_suppressed_at) == (None, None)
    assert profile.consent_email is True
    assert TrackingEvent.objects.count() == 0
    assert ProviderCallback.objects.count() == 0


def test_it_refuses_an_anonymous_esp_post_while_no_secret_is_set_and_writes_nothing(client, settings, sent):
    # given no ANYMAIL_WEBHOOK_SECRET, and a sent email
    settings.ANYMAIL = {}
    delivery = sent("email")
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 42,
        "MessageID": delivery.provider_message_id,
        "Email": delivery.intervention.profile.email,
        "BouncedAt": "2026-11-28T10:00:00Z",
        "Metadata": {"delivery_id": str(delivery.pk)},
    }

    # when anyone posts a bounce and a complaint for it, without credentials
    responses = [
        client.post("/api/v1/webhooks/anymail/postmark/tracking/", body, content_type="application/json")
        for body in (bounce_of(delivery), complaint)
    ]

    # then
    assert [r.status_code for r in responses] == [403, 403]
    assert responses[0].json()["error"]["code"] == "webhook_not_configured"
    assert_nothing_written(delivery)


def test_it_ignores_an_esp_event_naming_a_delivery_of_another_channel(client, anymail_settings, sent):
    # given an authenticated ESP bounce whose metadata and message id name an SMS delivery
    delivery = sent("sms")
    malformed = {**bounce_of(delivery), "ID": 7, "Metadata": {"delivery_id": "not-a-uuid"}}

    # when, and once more with a delivery id that is not one
    responses = [postmark_post(client, bounce_of(delivery)), postmark_post(client, malformed)]

    # then the ESP is answered (it would retry otherwise) and nothing is written
    assert [r.status_code for r in responses] == [200, 200]
    assert_nothing_written(delivery)


@pytest.mark.parametrize(
    "path",
    ["mailgun/tracking/", "sendgrid/tracking/", "mandrill/", "mandrill/tracking/", "postmark/inbound/"],
)
def test_it_mounts_no_webhook_but_the_configured_esps_tracking_one(client, anymail_settings, sent, path):
    # given the configured ESP is Postmark (test settings), and a sent email
    delivery = sent("email")

    # when another ESP's webhook (or an inbound one) is posted to, with the right secret even
    auth = "Basic " + base64.b64encode(b"hook:secret-words").decode()
    response = client.post(
        f"/api/v1/webhooks/anymail/{path}", {"delivery_id": str(delivery.pk)}, HTTP_AUTHORIZATION=auth
    )

    # then
    assert response.status_code == 404
    assert_nothing_written(delivery)


def test_it_records_push_receipts_once_with_a_scoped_api_key(api_client, sent):
    # given
    delivery = sent("push")
    body = {"receipts": [{"receipt_id": "r-1", "delivery_id": str(delivery.pk), "status": "delivered"}]}

    # when
    first = api_client(scopes=["webhooks"]).post("/api/v1/webhooks/push-receipts", body, format="json")
    replay = api_client(scopes=["webhooks"]).post("/api/v1/webhooks/push-receipts", body, format="json")
    wrong_scope = api_client(scopes=["events"]).post("/api/v1/webhooks/push-receipts", body, format="json")

    # then
    delivery.refresh_from_db()
    assert first.status_code == 200
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "replayed"
    assert wrong_scope.status_code == 403
    assert delivery.status == Delivery.Status.DELIVERED
    assert TrackingEvent.objects.filter(delivery_id=delivery.pk).count() == 1


def test_it_refuses_a_push_receipt_call_naming_an_unknown_delivery_and_writes_none_of_it(api_client, sent):
    # given a call with one receipt for a real push and one for a delivery that does not exist
    delivery = sent("push")
    body = {
        "receipts": [
            {"receipt_id": "r-3", "delivery_id": str(delivery.pk), "status": "delivered"},
            {"receipt_id": "r-4", "delivery_id": str(uuid.uuid4()), "status": "delivered"},
        ]
    }

    # when
    response = api_client(scopes=["webhooks"]).post("/api/v1/webhooks/push-receipts", body, format="json")

    # then it is a 404 in the API's error shape, and the known receipt was not recorded either
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not TrackingEvent.objects.filter(delivery_id=delivery.pk).exists()


def test_it_refuses_push_receipts_without_a_key(client, sent):
    # given
    delivery = sent("push")
    body = {"receipts": [{"receipt_id": "r-2", "delivery_id": str(delivery.pk), "status": "opened"}]}

    # when
    response = client.post("/api/v1/webhooks/push-receipts", body, content_type="application/json")

    # then
    assert response.status_code in (401, 403)
    assert TrackingEvent.objects.count() == 0
