"""The demo shop's publishing views on the real broker: what the shop and the ML service would send."""

from __future__ import annotations

import json

import pytest

from delivery.events import parse_cart_event, parse_prediction
from messaging.kafka import topic
from tests.messaging.kafka_topics import isolate_topics, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


@pytest.fixture
def demo(settings, client):
    settings.DEMO_ENABLED = True
    isolate_topics(settings)
    client.get("/demo/")  # the session's demo shopper
    return client


def test_it_publishes_the_cart_priced_from_the_catalogue(demo):
    # given a cart from the page with a forged price, an unknown SKU and an absurd quantity
    cart = {
        "items": [
            {"sku": "SKU-TRAIL", "price": 0.01, "quantity": 2},
            {"sku": "SKU-NOPE", "price": 5, "quantity": 1},
            {"sku": "SKU-SOCKS", "price": 24.5, "quantity": 10_000},
            "not an item",
        ]
    }

    # when
    response = demo.post("/demo/cart", json.dumps({"cart": cart}), content_type="application/json")

    # then the enriched cart event holds only what the catalogue sells, at its prices, and is valid
    assert response.status_code == 200
    [message] = read_all(topic("cart-events-enriched"), expected=1)
    event = parse_cart_event(message.value())
    assert event.cart == {
        "currency": "EUR",
        "total": 199.8,
        "item_count": 2,
        "items": [{"sku": "SKU-TRAIL", "name": "Trail running shoe", "price": 99.9, "quantity": 2}],
    }
    assert event.user is not None
    assert event.user["first_name"] == "Alex"


def test_it_publishes_a_valid_prediction_even_for_a_body_that_is_not_json(demo):
    # when
    response = demo.post("/demo/idle", "{not json", content_type="application/json")

    # then
    assert response.status_code == 200
    [message] = read_all(topic("prediction-results"), expected=1)
    prediction = parse_prediction(message.value())
    assert prediction.score == 0.9
    assert json.loads(message.value())["explanations"]["cart_total"] == 0
