"""Kafka client configuration and topic management, in one place for every process."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from django.conf import settings

from core.observability import get_logger

logger = get_logger(__name__)


def topic(name: str) -> str:
    """The configured name of a contract topic (SPEC §3), e.g. ``topic("intervention-events")``."""
    return settings.KAFKA_TOPICS[name]


def client_config() -> dict[str, Any]:
    """Settings every client shares. librdkafka's own connection-refused chatter goes to its log
    callback at warning level instead of flooding stderr; our code reports failures itself."""
    return {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "log_level": 4,
        "logger": _librdkafka_logger,
    }


_librdkafka_logger = logging.getLogger("kafka.librdkafka")
_librdkafka_logger.setLevel(logging.ERROR)


def producer_config(**overrides: Any) -> dict[str, Any]:
    return {
        **client_config(),
        # Idempotent producer: broker-side de-duplication of retried sends, ordered per partition.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "none",
        **overrides,
    }


def consumer_config(*, group_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        **client_config(),
        "group.id": group_id or settings.KAFKA_CONSUMER_GROUP,
        "auto.offset.reset": "earliest",
        # Offsets are stored by us after the database commit, and committed in the background.
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": max(1000, settings.KAFKA_SESSION_TIMEOUT_MS // 3),
        "fetch.wait.max.ms": settings.KAFKA_FETCH_WAIT_MAX_MS,
        **overrides,
    }


def admin_client() -> AdminClient:
    return AdminClient(client_config())


def ensure_topics(*, partitions: int | None = None, timeout: float = 15.0) -> list[str]:
    """Create the contract topics that do not exist yet; returns the names it created."""
    admin = admin_client()
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [name for name in settings.KAFKA_TOPICS.values() if name not in existing]
    if not missing:
        return []
    count = partitions or settings.KAFKA_TOPIC_PARTITIONS
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=count, replication_factor=1) for name in missing]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except Exception as exc:
            # Another process may have created it between our listing and our request.
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        logger.info("kafka_topic_created", topic=name, partitions=count)
    return missing
