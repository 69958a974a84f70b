"""Erasing a shopper (``DELETE /api/v1/users/{id}``) leaves nothing that identifies them, in any table or log,
and their later events do not bring their data back (docs/privacy.md)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models
from django.db.models import TextField
from django.db.models.functions import Cast

from api.models import Scope
from delivery.services import decisions_process_batch
from interventions.models import Delivery, Intervention
from interventions.services import delivery_mark_failed
from messaging.models import OutboxMessage
from notifications.models import ProviderAttempt
from personalization.models import Profile, PushToken
from personalization.selectors import shopper_erased_id
from tests import fixtures as f
from tracking.models import Conversion, TrackingEvent
from tracking.services import tracking_event_record

pytestmark = pytest.mark.django_db

# Letters outside 0-9a-f, so no hash or uuid can hold them by chance.
FIRST_NAME = "Zenobiax"


def identifiers_of(user_id: str) -> dict[str, str]:
    return {
        "user_id": user_id,
        "email": f"{user_id}@example.com",
        "phone": "+33711223344",
        "first_name": FIRST_NAME,
    }


def shopper_who_touched_everything(api_client: Any) -> dict[str, str]:
    """A shopper with a profile, a push token, a decided and rendered email intervention whose delivery
    failed with the provider quoting the address, a provider attempt, a tracking event with properties, a
    conversion, outbox rows of both topics, and idempotent API answers holding their data."""
    user_id = f"shopper-{uuid.uuid4().hex[:6]}-zq"
    ids = identifiers_of(user_id)
    campaign = f.campaign_live(channels=["email"], exit_events=[])
    campaigns = f.active_set()
    user = {"email": ids["email"], "phone": ids["phone"], "first_name": FIRST_NAME, "locale": "en"}
    decisions_process_batch(
        events=[
            f.cart_event(user_id=user_id, user=user),
            f.prediction(user_id=user_id, score=0.9),
        ],
        campaigns=campaigns,
        after_commit=False,
    )
    intervention = Intervention.objects.get(user_id=user_id)
    assert FIRST_NAME in intervention.content["body_text"]
    delivery = Delivery.objects.get(intervention=intervention)
    error = f"550 mailbox {ids['email']} ({FIRST_NAME}) unavailable"
    delivery_mark_failed(
        delivery=delivery, provider="smtp", error_kind="permanent", error=error, response={"to": ids["email"]}
    )
    ProviderAttempt.objects.create(
        provider="smtp",
        channel="email",
        delivery_id=delivery.pk,
        outcome="permanent",
        latency_ms=12,
        error=error,
    )
    tracking_event_record(
        intervention_id=intervention.pk,
        type="clicked",
        source="api",
        channel="email",
        properties={"url": f"https://shop.example.com/?u={user_id}", "who": ids["email"]},
    )
    decisions_process_batch(
        events=[
            f.cart_event(
                user_id=user_id,
                event_type="checkout_completed",
                order={"order_id": user_id, "revenue": 50, "currency": "EUR"},
            )
        ],
        campaigns=campaigns,
        after_commit=False,
    )
    profile = Profile.objects.get(user_id=user_id)
    PushToken.objects.create(profile=profile, token=f"fcm-{user_id}")
    client = api_client()
    assert (
        client.put(
            f"/api/v1/users/{user_id}/preferences",
            {"locale": "en"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="p-1",
        ).status_code
        == 200
    )
    triggered = client.post(
        "/api/v1/interventions",
        {"user_id": user_id, "campaign_id": campaign.pk, "context": {"score": 0.9}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="t-1",
    )
    assert triggered.status_code in (200, 201), triggered.json()
    # the given touched every table named above
    assert Conversion.objects.filter(user_id=user_id).exists()
    assert OutboxMessage.objects.filter(key=user_id, topic__endswith="conversion-events").exists()
    assert OutboxMessage.objects.filter(key=user_id, topic__endswith="intervention-events").exists()
    assert TrackingEvent.objects.filter(user_id=user_id).exclude(properties={}).exists()
    assert _model_hits(ids), "the search finds nothing even before the erasure"
    return ids


def _model_hits(ids: dict[str, str]) -> list[str]:
    """Every (model, field) of every installed app whose text or JSON holds one of ``ids``."""
    hits = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, models.JSONField):
                queryset = model._default_manager.annotate(_as_text=Cast(field.name, TextField()))
                name = "_as_text"
            elif isinstance(field, models.CharField | models.TextField):
                queryset, name = model._default_manager.all(), field.name
            else:
                continue
            for label, value in ids.items():
                if queryset.filter(**{f"{name}__icontains": value}).exists():
                    hits.append(f"{model._meta.label}.{field.name} holds the {label}")
    return hits


def _table_hits(ids: dict[str, str]) -> list[str]:
    """Every table of the database whose rows, as text, hold one of ``ids`` (models or not)."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for label, value in ids.items():
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" AS t WHERE t::text ILIKE %s',  # noqa: S608
                    [f"%{value}%"],
                )
                if cursor.fetchone()[0]:
                    hits.append(f"{table} holds the {label}")
    return hits


def test_it_leaves_nothing_that_identifies_an_erased_shopper(api_client, caplog) -> None:
    # given a shopper who touched every table
    ids = shopper_who_touched_everything(api_client)
    user_id = ids["user_id"]

    # when they are erased through the API (with an Idempotency-Key, whose answer is stored otherwise)
    caplog.set_level(logging.DEBUG)
    response = api_client().delete(f"/api/v1/users/{user_id}", HTTP_IDEMPOTENCY_KEY="erase-1")

    # then no table, read through the models or as raw rows, and no log line holds their identifiers
    assert response.status_code == 204
    assert _model_hits(ids) == []
    assert _table_hits(ids) == []
    assert [r for r in caplog.records if any(v in r.getMessage() for v in ids.values())] == []
    # and what campaign results count stays, under the shopper's tombstone id
    erased_id = shopper_erased_id(user_id=user_id)
    assert Profile.objects.get(user_id=erased_id).erased_at is not None
    assert Intervention.objects.filter(user_id=erased_id).count() == 2
    assert Conversion.objects.filter(user_id=erased_id).count() == 1
    assert TrackingEvent.objects.filter(user_id=erased_id, properties={}).exists()
    assert OutboxMessage.objects.filter(key=erased_id, payload__user_id=erased_id).count() >= 4
    assert not OutboxMessage.objects.filter(key=erased_id, payload__has_key="reason").exists()


def test_it_does_not_let_later_events_refill_an_erased_profile(api_client, caplog) -> None:
    # given an erased shopper
    ids = shopper_who_touched_everything(api_client)
    user_id = ids["user_id"]
    assert api_client().delete(f"/api/v1/users/{user_id}").status_code == 204
    caplog.set_level(logging.DEBUG)

    # when their cart, a prediction and an order arrive later
    user = {"email": ids["email"], "phone": ids["phone"], "first_name": FIRST_NAME}
    outcome = decisions_process_batch(
        events=[
            f.cart_event(user_id=user_id, user=user),
            f.prediction(user_id=user_id, score=0.95),
            f.cart_event(user_id=user_id, event_type="checkout_completed", user=user),
        ],
        campaigns=f.active_set(),
        after_commit=False,
    )

    # then nothing is decided or recorded, and nothing anywhere holds their identifiers again
    assert outcome.created == []
    assert outcome.conversions == 0
    assert not Profile.objects.filter(user_id=user_id).exists()
    assert Profile.objects.get(user_id=shopper_erased_id(user_id=user_id)).last_cart == {}
    assert _table_hits(ids) == []
    assert [r for r in caplog.records if any(v in r.getMessage() for v in ids.values())] == []


def test_it_starts_a_new_profile_on_a_new_consent_after_an_erasure(api_client) -> None:
    # given an erased shopper
    user_id = f"shopper-{uuid.uuid4().hex[:6]}-zq"
    client = api_client(scopes=[Scope.USERS])
    client.put(f"/api/v1/users/{user_id}/preferences", {"consent": {"email": True}}, format="json")
    assert client.delete(f"/api/v1/users/{user_id}").status_code == 204
    erased = Profile.objects.get(user_id=shopper_erased_id(user_id=user_id))

    # when the shop records their new consent, then their cart arrives
    response = client.put(f"/api/v1/users/{user_id}/preferences", {"consent": {"email": True}}, format="json")
    decisions_process_batch(
        events=[f.cart_event(user_id=user_id)], campaigns=f.active_set(), after_commit=False
    )

    # then a new profile takes their events, and the erased row stays, no longer linked to them
    assert response.status_code == 200
    profile = Profile.objects.get(user_id=user_id)
    assert profile.pk != erased.pk
    assert profile.erased_at is None
    assert profile.last_cart["total"] == 129.9
    erased.refresh_from_db()
    assert erased.user_id.startswith("erased:")
    assert erased.user_id != shopper_erased_id(user_id=user_id)
    # and erasing them again erases the new profile
    assert client.delete(f"/api/v1/users/{user_id}").status_code == 204
    assert not Profile.objects.filter(user_id=user_id).exists()
