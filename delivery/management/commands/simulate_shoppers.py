"""Publish realistic shopper traffic to Kafka, for demos and benchmarks.

Each simulated session is a story told in order — a few page views, items added (and sometimes removed),
an abandonment prediction with a score, then either a checkout with an order or an abandoned cart — and many
sessions are interleaved, as on a real shop. Bounded by ``--duration`` and ``--max-events``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm  # type: ignore[import-untyped]

from messaging.kafka import producer_config, topic

CATALOGUE = [
    ("SKU-101", "Trail running shoe", 119.0),
    ("SKU-102", "Merino socks", 14.5),
    ("SKU-103", "Rain jacket", 89.9),
    ("SKU-104", "Headlamp", 34.0),
    ("SKU-105", "Hydration vest", 74.0),
    ("SKU-106", "Running cap", 19.9),
    ("SKU-107", "Energy gels x12", 24.0),
]
FIRST_NAMES = ["Ada", "Grace", "Linus", "Camille", "Yuki", "Amara", "Jonas", "Lea"]
LOCALES = [
    ("en", "Europe/London"),
    ("fr-FR", "Europe/Paris"),
    ("de-DE", "Europe/Berlin"),
    ("en", "America/New_York"),
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def session(rng: random.Random, *, user_number: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(contract topic, key, body) of one shopper's session, in the order it happens."""
    user_id = f"sim-u-{user_number}"
    session_id, cart_id = f"s-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
    locale, zone = rng.choice(LOCALES)
    user = {
        "email": f"{user_id}@example.com",
        "phone": f"+336{rng.randrange(10**8):08d}",
        "first_name": rng.choice(FIRST_NAMES),
        "locale": locale,
        "timezone": zone,
        "attributes": {"tier": rng.choices(["gold", "silver", "bronze"], [1, 2, 4])[0]},
    }
    items: list[dict[str, Any]] = []

    def cart() -> dict[str, Any]:
        total = round(sum(i["price"] * i["quantity"] for i in items), 2)
        count = sum(i["quantity"] for i in items)
        return {"currency": "EUR", "total": total, "item_count": count, "items": [dict(i) for i in items]}

    def event(event_type: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": _now(),
            "user_id": user_id,
            "session_id": session_id,
            "cart_id": cart_id,
            "user": user,
            **extra,
        }
        if event_type.startswith(("cart_", "checkout_")):
            body["cart"] = cart()
        return "cart-events-enriched", user_id, body

    for _ in range(rng.randrange(1, 5)):
        yield event("page_viewed")
    for _ in range(rng.randrange(1, 4)):
        sku, name, price = rng.choice(CATALOGUE)
        items.append({"sku": sku, "name": name, "price": price, "quantity": rng.randrange(1, 3)})
        yield event("cart_item_added")
    if len(items) > 1 and rng.random() < 0.2:
        items.pop()
        yield event("cart_item_removed")
    yield event("cart_viewed")
    score = round(rng.betavariate(2, 2), 3)
    yield (
        "prediction-results",
        user_id,
        {
            "prediction_id": str(uuid.uuid4()),
            "model": "cart_abandonment",
            "model_version": "2026-11-01",
            "user_id": user_id,
            "session_id": session_id,
            "cart_id": cart_id,
            "score": score,
            "predicted_at": _now(),
            "explanations": {"idle_seconds": rng.randrange(30, 900)},
        },
    )
    if rng.random() > score:  # the likelier the abandonment, the likelier it happens
        yield event("checkout_started")
        order = {"order_id": f"o-{uuid.uuid4().hex[:10]}", "revenue": cart()["total"], "currency": "EUR"}
        yield event("checkout_completed", order=order)
    else:
        yield event("cart_abandoned")


class Command(BaseCommand):
    help = "Publish realistic shopper sessions (page views, carts, predictions, checkouts) at a chosen rate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=50.0, help="events per second")
        parser.add_argument("--duration", type=float, default=30.0, help="seconds")
        parser.add_argument("--users", type=int, default=1000, help="distinct shoppers")
        parser.add_argument("--max-events", type=int, default=1_000_000)
        parser.add_argument(
            "--concurrent-sessions", type=int, default=None, help="open sessions at a time (default: ~rate/4)"
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        rate, duration = max(0.1, options["rate"]), max(0.0, options["duration"])
        total = min(options["max_events"], int(rate * duration))
        rng = random.Random(options["seed"])  # noqa: S311  (simulated traffic, not secrets)
        producer = Producer(producer_config(**{"linger.ms": 10}))
        # Enough open sessions to interleave, few enough that sessions reach their checkout in the run.
        concurrent = options["concurrent_sessions"] or max(5, min(500, int(rate / 4)))
        sessions: list[Iterator[tuple[str, str, dict[str, Any]]]] = []
        sent = 0
        started = time.monotonic()
        with tqdm(total=total, unit="ev", disable=options["no_progress"], desc="shoppers") as bar:
            while sent < total and time.monotonic() - started < duration + 5:
                due = min(total, int((time.monotonic() - started) * rate) + 1)
                while sent < due:
                    while len(sessions) < concurrent:
                        sessions.append(session(rng, user_number=rng.randrange(options["users"])))
                    index = rng.randrange(len(sessions))
                    try:
                        name, key, body = next(sessions[index])
                    except StopIteration:
                        sessions.pop(index)
                        continue
                    self._produce(producer, topic(name), key, body)
                    sent += 1
                    bar.update(1)
                producer.poll(0)
                time.sleep(min(0.01, 1 / rate))
        remaining = producer.flush(30)
        self.stdout.write(
            self.style.SUCCESS(f"published {sent - remaining} events in {time.monotonic() - started:.1f}s")
        )

    def _produce(self, producer: Producer, name: str, key: str, body: dict[str, Any]) -> None:
        value = json.dumps(body, separators=(",", ":")).encode()
        while True:
            try:
                producer.produce(name, key=key.encode(), value=value)
                return
            except BufferError:
                producer.poll(0.05)
