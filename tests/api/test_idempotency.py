from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import IdempotencyRecord
from api.tasks import idempotency_records_purge_task
from personalization.models import Profile

pytestmark = pytest.mark.django_db

URL = "/api/v1/users/u-1/preferences"


def test_it_replays_the_first_answer_for_the_same_key_and_body(api_client) -> None:
    # given a write sent with an Idempotency-Key
    client = api_client()
    first = client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first

    # when the shopper changes meanwhile and the same request is retried
    Profile.objects.filter(user_id="u-1").update(locale="de-DE")
    again = client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    # then the stored answer comes back and the work is not done again
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Profile.objects.get(user_id="u-1").locale == "de-DE"


def test_it_refuses_the_same_key_with_another_body(api_client) -> None:
    client = api_client()
    client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = client.put(URL, {"locale": "it-IT"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Profile.objects.get(user_id="u-1").locale == "fr-FR"


def test_it_answers_409_while_the_first_request_is_in_flight(api_client) -> None:
    # given a first request that claimed the key and has not answered yet
    client = api_client()
    client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    IdempotencyRecord.objects.update(status_code=None, response_body=None)

    # when a duplicate arrives
    response = client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    # then it is told to retry later
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_progress"


def test_it_replays_an_error_answer_too(api_client) -> None:
    client = api_client()
    first = client.delete("/api/v1/users/nobody", HTTP_IDEMPOTENCY_KEY="k-2")
    Profile.objects.create(user_id="nobody")

    again = client.delete("/api/v1/users/nobody", HTTP_IDEMPOTENCY_KEY="k-2")

    assert first.status_code == again.status_code == 404
    assert again["Idempotent-Replayed"] == "true"


def test_it_keeps_keys_apart_per_api_key(api_client) -> None:
    api_client().put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = api_client().put(URL, {"locale": "it-IT"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response


def test_it_refuses_an_overlong_key(api_client) -> None:
    response = api_client().put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 201)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_it_purges_records_after_a_day_and_the_key_can_be_used_again(api_client) -> None:
    # given a key used more than a day ago
    client = api_client()
    client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    # when the purge runs
    purged = idempotency_records_purge_task()

    # then the record is gone and the key starts afresh
    assert purged == 1
    response = client.put(URL, {"locale": "it-IT"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
