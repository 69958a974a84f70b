"""``POST/GET /api/v1/interventions`` through the API with a real key, against PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.models import Scope
from campaigns.models import Campaign
from campaigns.services import DIRECT_CAMPAIGN_NAME
from gateway.realtime import onsite_replay
from interventions.models import Intervention
from messaging.models import OutboxMessage
from personalization.models import Profile
from tests import fixtures as f
from tracking.services import tracking_event_record

pytestmark = pytest.mark.django_db

URL = "/api/v1/interventions"


def shopper(**fields: Any) -> Profile:
    user_id = f.unique("u")
    return Profile.objects.create(user_id=user_id, email=f"{user_id}@example.com", first_name="Ada", **fields)


def trigger(client: Any, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(URL, body, format="json", **headers)


def lifecycle_types(intervention_id: str) -> list[str]:
    rows = OutboxMessage.objects.filter(topic__endswith="intervention-events").order_by("id")
    return [r.payload["type"] for r in rows if r.payload["intervention_id"] == intervention_id]


def test_it_triggers_one_intervention_by_campaign_with_variant_content_and_delivery(api_client):
    # given an active email campaign for scores >= 0.7 and a shopper with an email address
    campaign = f.campaign_live(channels=["email"])
    profile = shopper()

    # when a service triggers it with a 0.9 score and a cart in the context
    response = trigger(
        api_client(scopes=[Scope.INTERVENTIONS]),
        {
            "user_id": profile.user_id,
            "campaign_id": campaign.pk,
            "context": {"score": 0.9, "cart": {"currency": "EUR", "total": 80, "item_count": 1}},
        },
    )

    # then one pending email intervention is recorded, rendered for the context, with a queued delivery
    assert response.status_code == 201, response.json()
    body = response.json()
    intervention = Intervention.objects.get(campaign=campaign)
    assert body["id"] == str(intervention.pk)
    assert body["status"] == "pending"
    assert body["suppression_reason"] == ""
    assert body["channel"] == "email"
    assert body["variant_name"] == "A"
    assert body["content"]["subject"] == "A: 80 in your cart"
    assert "Ada" in body["content"]["body_text"]
    assert [(d["channel"], d["status"]) for d in body["deliveries"]] == [("email", "queued")]
    assert body["trigger_event_id"].startswith("api-")
    assert lifecycle_types(body["id"]) == ["intervention.created", "delivery.queued"]


def test_it_replays_the_same_idempotency_key_and_decides_an_event_id_once(api_client):
    # given an active campaign, a shopper and a client
    campaign = f.campaign_live(channels=["email"])
    profile = shopper()
    client = api_client()
    body = {"user_id": profile.user_id, "campaign_id": campaign.pk, "context": {"score": 0.8}}

    # when the same request is sent twice with one Idempotency-Key, and thrice more with one event_id
    first = trigger(client, body, HTTP_IDEMPOTENCY_KEY="k-1")
    replay = trigger(client, body, HTTP_IDEMPOTENCY_KEY="k-1")
    with_id = {**body, "event_id": "order-flow-7"}
    third = trigger(client, with_id)
    again = trigger(client, with_id)
    other_shopper = trigger(client, {**with_id, "user_id": shopper().user_id})

    # then the replay is the first answer; the repeated event id returns its first decision with 200,
    # and is refused for another shopper
    assert first.status_code == 201
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert third.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == third.json()["id"]
    assert other_shopper.status_code == 409
    assert other_shopper.json()["error"]["code"] == "event_id_reused"
    assert Intervention.objects.filter(campaign=campaign).count() == 2


def test_it_records_suppressed_decisions_with_their_reason(api_client):
    # given a shopper who withdrew email consent, and a campaign whose holdout is everyone
    campaign = f.campaign_live(channels=["email"])
    withdrawn = shopper(consent_email=False)
    held_out_campaign = f.campaign_live(channels=["email"], holdout_percent=100)
    client = api_client()

    # when both are triggered
    refused = trigger(
        client, {"user_id": withdrawn.user_id, "campaign_id": campaign.pk, "context": {"score": 1}}
    )
    held = trigger(
        client, {"user_id": shopper().user_id, "campaign_id": held_out_campaign.pk, "context": {"score": 1}}
    )

    # then each is a recorded decision (201), suppressed with its reason and no delivery
    assert refused.status_code == 201
    assert (refused.json()["status"], refused.json()["suppression_reason"]) == ("suppressed", "consent")
    assert held.status_code == 201
    assert (held.json()["status"], held.json()["suppression_reason"]) == ("suppressed", "holdout")
    assert held.json()["is_holdout"] is True
    assert held.json()["deliveries"] == []
    assert lifecycle_types(refused.json()["id"]) == ["intervention.suppressed"]


def test_it_refuses_inactive_unknown_and_non_matching_campaigns(api_client):
    # given a paused campaign and an active one for scores >= 0.7
    paused = f.campaign_live(channels=["email"])
    Campaign.objects.filter(pk=paused.pk).update(status=Campaign.Status.PAUSED)
    active = f.campaign_live(channels=["email"])
    user_id = shopper().user_id
    client = api_client()

    # when each is triggered (the active one with a low score)
    inactive = trigger(client, {"user_id": user_id, "campaign_id": paused.pk, "context": {"score": 0.9}})
    unknown = trigger(client, {"user_id": user_id, "campaign_id": 99_999_999, "context": {"score": 0.9}})
    low = trigger(client, {"user_id": user_id, "campaign_id": active.pk, "context": {"score": 0.2}})

    # then 409, 404 and 422 in the standard error shape, and nothing is recorded
    assert inactive.status_code == 409
    assert inactive.json()["error"]["code"] == "campaign_not_active"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert low.status_code == 422
    assert low.json()["error"]["code"] == "conditions_not_met"
    assert not Intervention.objects.filter(user_id=user_id).exists()


def test_it_sends_a_template_directly_under_the_built_in_campaign_and_creates_the_shopper(api_client):
    # given an email template and a shopper the engine has never seen
    template = f.template("email", subject="Hello {{ profile.first_name }}")
    user_id = f.unique("new")
    client = api_client()

    # when it is sent directly with the shopper's contact details, then sent by SMS (no consent by default)
    sent = trigger(
        client,
        {
            "user_id": user_id,
            "template_id": template.pk,
            "channel": "email",
            "context": {},
            "user": {"email": "grace@example.com", "first_name": "Grace", "locale": "en"},
        },
    )
    sms = f.template("sms", body_text="Hi")
    refused = trigger(client, {"user_id": user_id, "template_id": sms.pk, "channel": "sms"})
    mismatch = trigger(client, {"user_id": user_id, "template_id": sms.pk, "channel": "email"})

    # then the email is pending with a queued delivery, recorded under "Direct API sends" (and in its
    # report); the SMS is suppressed for consent; a template of another channel is refused
    assert sent.status_code == 201, sent.json()
    body = sent.json()
    assert body["campaign_name"] == DIRECT_CAMPAIGN_NAME
    assert (body["status"], body["channel"], body["variant_name"]) == ("pending", "email", "Direct send")
    assert body["content"]["subject"] == "Hello Grace"
    assert [d["status"] for d in body["deliveries"]] == ["queued"]
    assert Profile.objects.get(user_id=user_id).email == "grace@example.com"
    assert (refused.json()["status"], refused.json()["suppression_reason"]) == ("suppressed", "consent")
    assert refused.json()["campaign_id"] == body["campaign_id"]
    assert Campaign.objects.filter(name=DIRECT_CAMPAIGN_NAME).count() == 1
    assert mismatch.status_code == 400
    assert mismatch.json()["error"]["code"] == "channel_mismatch"
    as_campaign = trigger(client, {"user_id": user_id, "campaign_id": body["campaign_id"]})
    assert as_campaign.status_code == 409
    assert as_campaign.json()["error"]["code"] == "campaign_not_triggerable"
    report = client.get(f"/api/v1/campaigns/{body['campaign_id']}/report")
    assert report.status_code == 200, report.json()
    assert report.json()["funnel"]["exposures"] == 2


def test_it_answers_bad_requests_in_the_standard_shape(api_client):
    # given a key with the interventions scope and one without
    client = api_client(scopes=[Scope.INTERVENTIONS])
    events_only = api_client(scopes=[Scope.EVENTS])
    campaign = f.campaign_live(channels=["email"])
    body = {"user_id": "u-1", "campaign_id": campaign.pk}

    # when it sends an unknown field, broken JSON, both kinds of trigger, and the other key a valid body
    unknown = trigger(client, {**body, "colour": "red", "user": {"email": "a@example.com", "shoe": 42}})
    broken = client.post(URL, b'{"user_id": ', content_type="application/json")
    both = trigger(client, {**body, "template_id": 1, "channel": "email"})
    forbidden = trigger(events_only, body)
    bad_zone = trigger(client, {**body, "user": {"timezone": "Mars/Olympus_Mons"}})

    # then 400 unknown_field (with dotted paths), 400 malformed_json, 400 invalid, 403 insufficient_scope
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_field"
    assert sorted(unknown.json()["error"]["details"]["unknown_fields"]) == ["colour", "user.shoe"]
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "malformed_json"
    assert both.status_code == 400
    assert both.json()["error"]["code"] == "invalid"
    assert bad_zone.status_code == 400
    assert "timezone" in bad_zone.json()["error"]["details"]["user"]
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["details"]["missing_scopes"] == ["interventions"]
    assert not Intervention.objects.exists()


def test_it_lists_with_filters_and_shows_one_with_deliveries_and_events_in_bounded_queries(
    api_client, django_assert_max_num_queries
):
    # given five interventions of one shopper (one suppressed), one of another, and tracking on one
    campaign = f.campaign_live(channels=["email"])
    ada, bob = shopper(), shopper()
    client = api_client()
    ids = [
        trigger(
            client, {"user_id": ada.user_id, "campaign_id": campaign.pk, "context": {"score": 0.9}}
        ).json()["id"]
        for _ in range(4)
    ]
    Profile.objects.filter(pk=ada.pk).update(consent_email=False)
    trigger(client, {"user_id": ada.user_id, "campaign_id": campaign.pk, "context": {"score": 0.9}})
    trigger(client, {"user_id": bob.user_id, "campaign_id": campaign.pk, "context": {"score": 0.9}})
    tracking_event_record(intervention_id=uuid.UUID(ids[0]), type="opened", source="pixel", event_id="ev-1")
    tracking_event_record(intervention_id=uuid.UUID(ids[0]), type="clicked", source="link", event_id="ev-2")

    # when the shopper's pending ones are listed, two per page, and the first one is read
    # (the key, the count, the page, its deliveries — or the row, deliveries, events — and maybe the key's
    # last_used_at: whatever the number of rows)
    with django_assert_max_num_queries(5):
        page = client.get(URL, {"user_id": ada.user_id, "status": "delivered", "limit": 2})
    with django_assert_max_num_queries(5):
        pending = client.get(URL, {"user_id": ada.user_id, "status": "pending", "campaign": campaign.pk})
    with django_assert_max_num_queries(5):
        detail = client.get(f"{URL}/{ids[0]}")
    bad_filter = client.get(URL, {"since": "yesterday"})
    missing = client.get(f"{URL}/{uuid.uuid4()}")

    # then filters apply, each row carries its deliveries, and the detail its events in order
    assert page.status_code == 200
    assert page.json()["count"] == 1  # the opened one was marked delivered
    assert page.json()["results"][0]["id"] == ids[0]
    assert pending.json()["count"] == 3
    assert all(len(row["deliveries"]) == 1 for row in pending.json()["results"])
    assert detail.status_code == 200
    assert [e["type"] for e in detail.json()["events"]] == ["opened", "clicked"]
    assert detail.json()["deliveries"][0]["status"] == "delivered"
    assert {"attempts", "provider", "last_error", "queued_at", "sent_at"} <= set(
        detail.json()["deliveries"][0]
    )
    assert bad_filter.status_code == 400
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_it_counts_api_sends_against_the_campaign_caps_after_commit(
    api_client, django_capture_on_commit_callbacks
):
    # given a campaign capped at one send per hour and a shopper
    campaign = f.campaign_live(channels=["email"], frequency_cap_count=1, frequency_cap_window_seconds=3600)
    profile = shopper()
    client = api_client()
    body = {"user_id": profile.user_id, "campaign_id": campaign.pk, "context": {"score": 0.9}}

    # when it is triggered twice, each request committed (so the hand-off counts the send)
    with django_capture_on_commit_callbacks(execute=True):
        first = trigger(client, body)
    with django_capture_on_commit_callbacks(execute=True):
        second = trigger(client, body)

    # then the second is suppressed by the frequency cap, exactly as for a Kafka event
    assert first.json()["status"] == "pending"
    assert (second.json()["status"], second.json()["suppression_reason"]) == ("suppressed", "frequency_cap")


def test_it_numbers_a_direct_onsite_send_for_the_socket_replay(api_client):
    # given an on-site template and a shopper
    template = f.template(
        "onsite",
        subject="Still thinking, {{ profile.first_name }}?",
        body_text="Hi {{ profile.first_name|default('there') }}",
    )
    profile = shopper()

    # when it is sent directly on-site twice (two event ids)
    client = api_client()
    bodies = [{"user_id": profile.user_id, "template_id": template.pk, "channel": "onsite"} for _ in range(2)]
    answers = [trigger(client, body).json() for body in bodies]

    # then each has the next per-shopper seq, and a reconnecting browser's resume replays both
    assert [a["seq"] for a in answers] == [1, 2]
    frames = onsite_replay(user_id=profile.user_id, last_seq=0)
    assert [frame["intervention_id"] for frame in frames] == [a["id"] for a in answers]
    assert frames[0]["content"]["title"] == "Still thinking, Ada?"
