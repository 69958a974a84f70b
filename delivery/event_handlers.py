"""Kafka messages in, decisions out: the batch handler the ``consume_events`` command drives.

``EventBatchHandler.handle(messages)`` validates every message, sends the invalid ones to the dead-letter
topic, runs the decision path for the valid ones in one transaction meanwhile, waits for the broker to
acknowledge the dead letters, and only then reports the batch done — the caller stores the offsets after
that, so a crash at any point redelivers the batch and the unique (campaign, trigger event) key makes the
replay a no-op.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message, Producer
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from core.observability import get_logger
from delivery import metrics
from delivery.events import InboundEvent, InvalidEvent, parse_cart_event, parse_prediction
from delivery.handoff import Handoff
from delivery.services import BatchOutcome, decisions_process_batch
from messaging.kafka import topic

logger = get_logger(__name__)

DLQ = "intervention-engine.dlq"


@dataclass
class DeadLetter:
    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """The DLQ message body (see docs/decision-path.md): reason, origin, original bytes."""
        original: str | None
        encoding = "utf-8"
        if self.value is None:
            original = None
        else:
            try:
                original = self.value.decode("utf-8")
            except UnicodeDecodeError:
                original, encoding = base64.b64encode(self.value).decode("ascii"), "base64"
        return {
            "reason": self.reason,
            "error": self.error,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "original": original,
            "original_encoding": encoding,
            "failed_at": timezone.now().isoformat(),
        }


def parsers() -> dict[str, Callable[[bytes | None], InboundEvent]]:
    return {
        topic("cart-events-enriched"): parse_cart_event,
        topic("prediction-results"): parse_prediction,
    }


@dataclass
class BatchResult:
    valid: int
    dead: int
    outcome: BatchOutcome | None


class EventBatchHandler:
    """Validation, dead-lettering and the decision path for one batch of Kafka messages."""

    def __init__(
        self, *, producer: Producer, handoff: Handoff | None = None, dlq_flush_timeout: float = 10.0
    ) -> None:
        self.producer = producer
        # The consumer's threaded hand-off; None: each batch hands off in the caller after its commit.
        self.handoff = handoff
        self.dlq_flush_timeout = dlq_flush_timeout
        self._parsers = parsers()

    def split(self, messages: Sequence[Message]) -> tuple[list[InboundEvent], list[DeadLetter]]:
        events: list[InboundEvent] = []
        dead: list[DeadLetter] = []
        for message in messages:
            source = message.topic() or ""
            value = message.value()
            parse = self._parsers.get(source)
            try:
                if parse is None:
                    raise InvalidEvent("unknown_topic", f"no handler for topic {source!r}")
                event = parse(value)
            except InvalidEvent as exc:
                dead.append(self._dead(message, reason=exc.reason, error=exc.message))
                continue
            event.topic, event.partition, event.offset = (
                source,
                message.partition() or 0,
                message.offset() or 0,
            )
            events.append(event)
            metrics.EVENTS_CONSUMED.labels(
                source, event.trigger if event.kind == "cart" else "prediction"
            ).inc()
        return events, dead

    def _dead(self, message: Message, *, reason: str, error: str) -> DeadLetter:
        source = message.topic() or ""
        metrics.EVENTS_CONSUMED.labels(source, "invalid").inc()
        return DeadLetter(
            reason=reason,
            error=error,
            topic=source,
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=message.key(),
            value=message.value(),
            headers=list(_header_list(message.headers())),
        )

    def dead_letter(self, dead: Sequence[DeadLetter]) -> None:
        """Publish to the DLQ and wait for the broker: offsets move on only once the message is safe."""
        self.dead_letter_confirm(dead, self.dead_letter_send(dead))

    def dead_letter_send(self, dead: Sequence[DeadLetter]) -> list[str]:
        """Hand the dead letters to the producer without waiting; returns the list its delivery reports
        fill with errors, for :meth:`dead_letter_confirm`."""
        failures: list[str] = []
        if not dead:
            return failures

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        for letter in dead:
            headers: list[tuple[str, str | bytes | None]] = [
                *letter.headers,
                ("dlq.reason", letter.reason.encode()),
                ("dlq.source.topic", letter.topic.encode()),
                ("dlq.source.partition", str(letter.partition).encode()),
                ("dlq.source.offset", str(letter.offset).encode()),
            ]
            self.producer.produce(
                topic(DLQ),
                key=letter.key,
                value=json.dumps(letter.payload(), separators=(",", ":")).encode(),
                headers=headers,
                on_delivery=on_delivery,
            )
        return failures

    def dead_letter_confirm(self, dead: Sequence[DeadLetter], failures: list[str]) -> None:
        """Wait until the broker acknowledged every dead letter sent; raises if one was not."""
        if not dead:
            return
        remaining = self.producer.flush(self.dlq_flush_timeout)
        if remaining or failures:
            raise RuntimeError(f"dead-letter publish failed: {failures[:1] or 'timeout'}")
        for letter in dead:
            metrics.EVENTS_DLQ.labels(letter.reason).inc()
            logger.warning(
                "event_dead_lettered",
                reason=letter.reason,
                error=letter.error,
                topic=letter.topic,
                partition=letter.partition,
                offset=letter.offset,
            )

    def handle(self, messages: Sequence[Message]) -> BatchResult:
        """Process one batch; raises if it could not be completed (the caller rewinds and retries)."""
        events, dead = self.split(messages)
        # The broker acknowledges the dead letters while the batch is decided; both must be done before
        # the caller stores the offsets (a failure of either rewinds the batch; a replay changes nothing).
        failures = self.dead_letter_send(dead)
        outcome = decisions_process_batch(events=events, handoff=self.handoff) if events else None
        self.dead_letter_confirm(dead, failures)
        return BatchResult(valid=len(events), dead=len(dead), outcome=outcome)

    def handle_one_by_one(self, messages: Sequence[Message]) -> BatchResult:
        """Fallback after a batch failed twice: each event in its own transaction, and an event whose
        processing fails is dead-lettered (reason ``processing_error``) so one poison message cannot stop
        the partition. Events that succeed here are the same decisions the batch would have made.

        A database error while PostgreSQL does not answer is not the event's fault: it is raised, and the
        batch comes again once PostgreSQL is back (what this pass decided is not decided twice)."""
        events, dead = self.split(messages)
        by_position = {(m.topic(), m.partition(), m.offset()): m for m in messages}
        valid = 0
        for event in events:
            try:
                decisions_process_batch(events=[event], handoff=self.handoff)
                valid += 1
            except Exception as exc:
                if isinstance(exc, DatabaseError) and not _database_answers():
                    raise
                logger.exception("event_processing_failed", topic=event.topic, offset=event.offset)
                message = by_position[(event.topic, event.partition, event.offset)]
                dead.append(
                    self._dead(message, reason="processing_error", error=f"{type(exc).__name__}: {exc}")
                )
        self.dead_letter(dead)
        return BatchResult(valid=valid, dead=len(dead), outcome=None)


def _database_answers() -> bool:
    """Does PostgreSQL answer now (on a new connection if the last one broke)?"""
    if not connection.in_atomic_block:
        close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def dlq_topic() -> str:
    return str(settings.KAFKA_TOPICS[DLQ])


def _header_list(
    headers: dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None,
) -> list[tuple[str, str | bytes | None]]:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


# --- Operator tools over the dead-letter topic (``manage.py dlq``) --------------------------------------


@dataclass
class DeadLetterRecord:
    partition: int
    offset: int
    key: bytes | None
    payload: dict[str, Any]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def original_bytes(self) -> bytes | None:
        original = self.payload.get("original")
        if original is None:
            return None
        if self.payload.get("original_encoding") == "base64":
            return base64.b64decode(original)
        return str(original).encode("utf-8")


def dlq_read(*, limit: int | None = None, timeout: float = 10.0) -> list[DeadLetterRecord]:
    """Every message on the dead-letter topic (all partitions, oldest first per partition)."""
    import time
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from messaging.kafka import client_config

    name = dlq_topic()
    consumer = Consumer(
        {**client_config(), "group.id": f"dlq-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    records: list[DeadLetterRecord] = []
    try:
        metadata = consumer.list_topics(name, timeout=timeout).topics.get(name)
        if metadata is None or metadata.error is not None:
            return []
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=timeout)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(name, p, 0) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(ends) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is not None:
                    continue
                partition, offset = message.partition() or 0, message.offset() or 0
                try:
                    payload = json.loads(message.value() or b"{}")
                except ValueError:
                    payload = {"reason": "unreadable", "error": "the DLQ message itself is not JSON"}
                records.append(DeadLetterRecord(partition, offset, message.key(), payload))
                if offset + 1 >= ends[partition]:
                    done.add(partition)
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.payload.get("failed_at") or "", r.partition, r.offset))
    return records[-limit:] if limit else records


def dlq_replay(*, records: Sequence[DeadLetterRecord], producer: Producer) -> int:
    """Publish the original bytes back to their source topic (after the upstream fix, or ours).

    The consumer validates them again: still-bad messages return to the DLQ, good ones are decided once
    (a message that was decided before is a duplicate and changes nothing).
    """
    count = 0
    for record in records:
        source = record.payload.get("topic")
        value = record.original_bytes()
        if not source or value is None:
            continue
        producer.produce(
            source,
            key=record.key,
            value=value,
            headers=[("dlq.replayed_from", record.position.encode())],
        )
        count += 1
    if producer.flush(15):
        raise RuntimeError("replay not acknowledged by the broker")
    return count
