"""Devices registered through the API reach FCM (the local stub) and are retired when it calls them dead;
every channel's opt-out reaches consent, ``intervention-events`` and the next decision."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from campaigns.models import AuditEntry
from delivery.services import decisions_process_batch
from interventions.models import Delivery, Intervention
from messaging.models import OutboxMessage
from notifications.services import delivery_send
from personalization.models import Profile, PushToken
from tests import fixtures as f

pytestmark = pytest.mark.django_db

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "inbound-token"
INBOUND_URL = "http://testserver/api/v1/webhooks/twilio/inbound"


@pytest.fixture
def twilio_inbound(settings):
    settings.TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_INBOUND_URL = INBOUND_URL
    return settings


def inbound(client, *, phone: str, body: str, sid: str, token: str = TWILIO_TOKEN):
    params = {"AccountSid": TWILIO_SID, "MessageSid": sid, "From": phone, "To": "+15005550006", "Body": body}
    signature = RequestValidator(token).compute_signature(INBOUND_URL, params)
    return client.post("/api/v1/webhooks/twilio/inbound", params, HTTP_X_TWILIO_SIGNATURE=signature)


def unsubscribed_events(user_id: str) -> list[dict]:
    rows = OutboxMessage.objects.filter(topic__endswith="intervention-events").order_by("id")
    return [
        r.payload
        for r in rows
        if r.payload["type"] == "engagement.unsubscribed" and r.payload["user_id"] == user_id
    ]


def test_it_pushes_to_registered_devices_and_retires_the_one_fcm_calls_unregistered(
    api_client, providers, provider_stub, make_delivery
) -> None:
    # given a push delivery whose shopper's app registered a live device and a dead one through the API
    delivery = make_delivery("push", push_tokens=())
    user_id = delivery.intervention.user_id
    client = api_client(scopes=["push_tokens"])
    for token in ("tok-live-1", "dead-phone"):
        response = client.post(
            f"/api/v1/users/{user_id}/push-tokens", {"platform": "android", "token": token}, format="json"
        )
        assert response.status_code == 201

    # when it is sent
    outcome = delivery_send(delivery_id=delivery.pk)

    # then FCM got it for the live device, and the dead one is retired
    assert outcome == "sent"
    assert [p["message"]["token"] for p in provider_stub.push] == ["tok-live-1"]
    active = dict(PushToken.objects.filter(profile__user_id=user_id).values_list("token", "is_active"))
    assert active == {"tok-live-1": True, "dead-phone": False}


def test_it_applies_stop_and_start_from_a_signed_inbound_sms_and_refuses_a_forged_one(
    client, twilio_inbound, make_delivery
) -> None:
    # given a shopper who consented to SMS and got one
    delivery = make_delivery("sms")
    Delivery.objects.filter(pk=delivery.pk).update(status="sent", sent_at=delivery.queued_at)
    profile = Profile.objects.get(pk=delivery.intervention.profile_id)
    assert profile.consent_sms

    # when a STOP arrives with a forged signature
    forged = inbound(client, phone=profile.phone, body="STOP", sid="SM-forged", token="not-the-token")

    # then 403, and nothing changes
    assert forged.status_code == 403
    profile.refresh_from_db()
    assert profile.consent_sms
    assert unsubscribed_events(profile.user_id) == []

    # when a signed " stop " (any case, spaces around) arrives
    response = inbound(client, phone=profile.phone, body=" stop ", sid="SM-1")

    # then SMS consent is withdrawn and published against the message it answers
    assert response.status_code == 200
    profile.refresh_from_db()
    assert not profile.consent_sms
    [event] = unsubscribed_events(profile.user_id)
    assert (event["channel"], event["intervention_id"]) == ("sms", str(delivery.intervention_id))

    # when the same message is replayed, then nothing more is published
    inbound(client, phone=profile.phone, body="STOP", sid="SM-1")
    assert len(unsubscribed_events(profile.user_id)) == 1

    # when the shopper sends START, then consent is back
    assert inbound(client, phone=profile.phone, body="Start", sid="SM-2").status_code == 200
    profile.refresh_from_db()
    assert profile.consent_sms

    # and an ordinary reply changes nothing
    inbound(client, phone=profile.phone, body="stop sending me shoes?", sid="SM-3")
    profile.refresh_from_db()
    assert profile.consent_sms


@pytest.mark.parametrize("keyword", ["STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"])
def test_it_knows_every_twilio_opt_out_keyword(client, twilio_inbound, keyword) -> None:
    profile = Profile.objects.create(user_id=f.unique("u"), phone="+33611112222", consent_sms=True)

    inbound(client, phone="+33611112222", body=keyword, sid=f.unique("SM"))

    profile.refresh_from_db()
    assert not profile.consent_sms
    # no SMS ever sent to this shopper: a shopper-level event, with the channel
    [event] = unsubscribed_events(profile.user_id)
    assert (event["channel"], event["intervention_id"], event["reason"]) == ("sms", None, "sms_keyword")


def test_it_records_a_push_opt_out_from_the_client(api_client) -> None:
    # given a shopper with push consent
    profile = Profile.objects.create(user_id=f.unique("u"))
    assert profile.consent_push

    # when the app reports that the shopper turned notifications off (twice)
    for _ in range(2):
        response = api_client(scopes=["push_tokens"]).post(
            f"/api/v1/users/{profile.user_id}/opt-outs", {"channel": "push"}, format="json"
        )
        assert response.status_code == 204

    # then consent is withdrawn and published once
    profile.refresh_from_db()
    assert not profile.consent_push
    assert [e["channel"] for e in unsubscribed_events(profile.user_id)] == ["push"]


def test_it_publishes_a_consent_withdrawn_through_preferences(api_client) -> None:
    profile = Profile.objects.create(user_id=f.unique("u"), consent_sms=True)

    api_client().put(
        f"/api/v1/users/{profile.user_id}/preferences",
        {"consent": {"sms": False, "email": True}},
        format="json",
    )

    assert [(e["channel"], e["reason"]) for e in unsubscribed_events(profile.user_id)] == [
        ("sms", "preferences")
    ]


def test_it_gives_a_shopper_who_sent_stop_the_next_consented_channel(client, twilio_inbound) -> None:
    # given an SMS-first campaign with email next, and a shopper reachable and consenting on both
    f.campaign(channels=["sms", "email"], status="active", variants=["A"])
    user_id, phone = f.unique("u"), "+33633334444"
    Profile.objects.create(user_id=user_id, email=f"{user_id}@example.com", phone=phone, consent_sms=True)

    def decide() -> Intervention:
        cart_id = f.unique("c")
        decisions_process_batch(
            events=[f.prediction(user_id=user_id, score=0.9, cart_id=cart_id)],
            campaigns=f.active_set(),
            after_commit=False,
        )
        return Intervention.objects.filter(user_id=user_id).latest("created_at")

    assert decide().channel == "sms"

    # when the shopper answers STOP
    assert inbound(client, phone=phone, body="STOP", sid=f.unique("SM")).status_code == 200

    # then the next decision goes by email
    assert decide().channel == "email"


def test_it_changes_contact_points_validated_and_audited_and_erases_the_audit(api_client) -> None:
    # given a shopper
    profile = Profile.objects.create(user_id=f.unique("u"), email="old@example.com", phone="+33600000001")
    client = api_client(name="crm-sync")
    url = f"/api/v1/users/{profile.user_id}/preferences"

    # when a malformed number or address is sent, then 400 naming the field, and nothing changes
    for body, field in (({"phone": "06 12 34 56 78"}, "phone"), ({"email": "not-an-address"}, "email")):
        refused = client.put(url, body, format="json")
        assert refused.status_code == 400
        assert field in refused.json()["error"]["details"]
    assert not AuditEntry.objects.filter(action="contact_changed", object_id=str(profile.pk)).exists()

    # when both change
    response = client.put(url, {"email": "new@example.com", "phone": "+33612345678"}, format="json")

    # then they are stored, shown, and audited with the key's name and the old and new values
    assert response.status_code == 200, response.json()
    assert (response.json()["email"], response.json()["phone"]) == ("new@example.com", "+33612345678")
    [entry] = AuditEntry.objects.filter(action="contact_changed", object_id=str(profile.pk))
    assert entry.actor_label == "API key crm-sync"
    assert entry.changes == {
        "email": ["old@example.com", "new@example.com"],
        "phone": ["+33600000001", "+33612345678"],
    }

    # when the shopper is erased, then the audit of their contact points goes too
    assert client.delete(f"/api/v1/users/{profile.user_id}").status_code == 204
    assert not AuditEntry.objects.filter(action="contact_changed", object_id=str(profile.pk)).exists()
