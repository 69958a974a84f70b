"""``POST /api/v1/events`` through the API with a real key, against PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from api.models import Scope
from campaigns.models import Campaign
from interventions.models import Delivery, Intervention
from messaging.models import OutboxMessage
from personalization.models import Profile
from tracking.models import TrackingEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/events"


def intervention(channel: str = "email") -> Intervention:
    """A pending intervention with a queued delivery, as the decision path leaves it."""
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    campaign, _ = Campaign.objects.get_or_create(
        name="events-api-campaign", defaults={"trigger": "cart_abandoned", "status": "active"}
    )
    obj = Intervention.objects.create(
        campaign=campaign,
        profile=Profile.objects.create(user_id=user_id, email=f"{user_id}@example.com"),
        user_id=user_id,
        trigger_event_id=f"evt-{uuid.uuid4()}",
        trigger="cart_abandoned",
        channel=channel,
        status=Intervention.Status.PENDING,
    )
    Delivery.objects.create(intervention=obj, channel=channel, status=Delivery.Status.SENT)
    return obj


def post(client: Any, events: list[dict[str, Any]], **headers: Any) -> Any:
    return client.post(URL, {"events": events}, format="json", **headers)


def test_it_accepts_a_batch_and_counts_duplicates_instead_of_applying_them_again(api_client):
    # given two interventions and a key with the events scope
    first, second = intervention(), intervention()
    client = api_client(scopes=[Scope.EVENTS])

    # when a batch opens both (one event_id twice in the batch), then the same events come again
    batch: list[dict[str, Any]] = [
        {"event_id": "e-1", "intervention_id": str(first.pk), "type": "opened"},
        {
            "event_id": "e-2",
            "intervention_id": str(first.pk),
            "type": "clicked",
            "properties": {"href": "/cart"},
        },
        {"event_id": "e-1", "intervention_id": str(first.pk), "type": "opened"},
        {
            "event_id": "e-3",
            "intervention_id": str(second.pk),
            "type": "opened",
            "occurred_at": "2026-11-28T10:00:00+01:00",
        },
    ]
    response = post(client, batch)
    again = post(client, batch)

    # then three are recorded once, with their effects, and the rest counted as duplicates
    assert response.status_code == 200, response.json()
    assert response.json() == {"accepted": 3, "duplicates": 1}
    assert again.json() == {"accepted": 0, "duplicates": 4}
    assert TrackingEvent.objects.filter(intervention__in=[first, second]).count() == 3
    assert TrackingEvent.objects.get(event_id="e-2").properties == {"href": "/cart"}
    assert TrackingEvent.objects.get(event_id="e-3").source == "api"
    first.refresh_from_db()
    assert first.status == Intervention.Status.DELIVERED
    assert Delivery.objects.get(intervention=first).status == Delivery.Status.DELIVERED
    engagement = OutboxMessage.objects.filter(payload__intervention_id=str(first.pk))
    assert sorted(m.payload["type"] for m in engagement) == ["engagement.clicked", "engagement.opened"]


def test_it_writes_nothing_when_one_item_is_invalid_and_says_which(api_client):
    # given an intervention
    target = intervention()
    client = api_client()

    # when a batch has a good item, an unknown type, a bad timestamp and an unknown field
    response = post(
        client,
        [
            {"intervention_id": str(target.pk), "type": "opened"},
            {"intervention_id": str(target.pk), "type": "converted"},
            {"intervention_id": str(target.pk), "type": "clicked", "occurred_at": "soon"},
            {"intervention_id": str(target.pk), "type": "clicked", "colour": "red"},
        ],
    )

    # then 400 with the errors under each failing index, and no event at all
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_field"
    assert set(error["details"]["events"]) == {"1", "2", "3"}
    assert "type" in error["details"]["events"]["1"]
    assert "occurred_at" in error["details"]["events"]["2"]
    assert error["details"]["unknown_fields"] == ["events.3.colour"]
    assert not TrackingEvent.objects.filter(intervention=target).exists()


def test_it_refuses_unknown_interventions_by_index(api_client):
    # given one real intervention
    target = intervention()

    # when a batch also names one that does not exist
    response = post(
        api_client(),
        [
            {"intervention_id": str(target.pk), "type": "displayed"},
            {"intervention_id": str(uuid.uuid4()), "type": "displayed"},
        ],
    )

    # then 404 unknown_intervention for index 1 only, and nothing is written
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_intervention"
    assert list(response.json()["error"]["details"]["events"]) == ["1"]
    assert not TrackingEvent.objects.filter(intervention=target).exists()


def test_it_refuses_more_than_a_thousand_events_empty_batches_and_other_scopes(api_client):
    # given an intervention and a batch of 1,001 events for it
    target = intervention()
    too_many = [{"intervention_id": str(target.pk), "type": "displayed"}] * 1001

    # when it is sent, then an empty batch, then a valid one with a key lacking the events scope
    large = post(api_client(), too_many)
    empty = post(api_client(), [])
    forbidden = post(api_client(scopes=[Scope.INTERVENTIONS]), too_many[:1])

    # then 413 batch_too_large, 400 invalid, 403 insufficient_scope — and nothing is written
    assert large.status_code == 413
    assert large.json()["error"]["code"] == "batch_too_large"
    assert large.json()["error"]["details"] == {"max_events": 1000, "events": 1001}
    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "invalid"
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "insufficient_scope"
    assert not TrackingEvent.objects.filter(intervention=target).exists()


def test_it_accepts_exactly_a_thousand_and_replays_an_idempotency_key(api_client):
    # given an intervention, a batch of 1,000 displays and a client
    target = intervention(channel="onsite")
    batch = [{"intervention_id": str(target.pk), "type": "displayed"} for _ in range(1000)]
    client = api_client()

    # when it is sent twice with one Idempotency-Key
    first = post(client, batch, HTTP_IDEMPOTENCY_KEY="events-1")
    replay = post(client, batch, HTTP_IDEMPOTENCY_KEY="events-1")

    # then all are accepted once; the replay is the stored answer and writes nothing more
    assert first.json() == {"accepted": 1000, "duplicates": 0}
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert TrackingEvent.objects.filter(intervention=target).count() == 1000
