"""Uniquely named topics on the shared broker, and small helpers to produce and read them back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from messaging.kafka import client_config, ensure_topics, producer_config


def isolate_topics(settings: Any, *, partitions: int = 1) -> str:
    """Point every contract topic at fresh, uniquely prefixed topics; returns the prefix."""
    prefix = f"h5t-{uuid.uuid4().hex[:8]}."
    settings.KAFKA_TOPICS = {name: f"{prefix}{name}" for name in settings.KAFKA_TOPICS}
    ensure_topics(partitions=partitions)
    return prefix


def produce(messages: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = Producer(producer_config())
    for name, key, value in messages:
        producer.produce(name, key=key, value=value)
    assert producer.flush(15) == 0


def read_all(name: str, *, expected: int, timeout: float = 20.0) -> list[Any]:
    """Read partition 0 of ``name`` from the beginning until ``expected`` messages came (or timeout)."""
    consumer = Consumer(
        {**client_config(), "group.id": f"h5-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(name, 0, 0)])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.5):
                if message.error() is None:
                    found.append(message)
    finally:
        consumer.close()
    return found


def json_values(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in messages]
