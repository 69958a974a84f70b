from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from api.models import IdempotencyRecord
from personalization.models import Profile

URL = "/api/v1/users/u-1/preferences"


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_arriving_while_the_first_is_running_gets_409(api_client) -> None:
    # given a first request that has claimed its key and is held mid-work by a row lock on the profile
    Profile.objects.create(user_id="u-1")
    client = api_client()
    answers: dict[str, int] = {}

    def send(label: str) -> None:
        try:
            response = client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
            answers[label] = response.status_code
        finally:
            connection.close()

    with transaction.atomic():
        Profile.objects.select_for_update().get(user_id="u-1")
        first = threading.Thread(target=send, args=("first",))
        first.start()
        deadline = time.monotonic() + 10
        while not IdempotencyRecord.objects.filter(key="k-1").exists():
            assert time.monotonic() < deadline, "the first request never claimed its key"
            time.sleep(0.01)

        # when the same request arrives again meanwhile
        duplicate = threading.Thread(target=send, args=("duplicate",))
        duplicate.start()
        duplicate.join(10)

    # then the duplicate is told to retry, the first completes once, and a later retry is replayed
    first.join(10)
    assert answers == {"duplicate": 409, "first": 200}
    replay = client.put(URL, {"locale": "fr-FR"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
