from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, Producer, TopicPartition
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from core.observability import get_logger
from delivery import metrics
from delivery.event_handlers import BatchResult, EventBatchHandler
from delivery.handoff import Handoff
from messaging.kafka import consumer_config, producer_config, topic
from messaging.workers import Worker

logger = get_logger(__name__)


class EventConsumer(Worker):
    """Reads cart events and predictions in batches and runs the decision path on each batch.

    Offsets are stored only after a batch is fully done (DLQ acknowledged, transaction committed);
    librdkafka commits stored offsets in the background and on close. A batch that fails is rewound and
    retried; after ``max_batch_attempts`` failures its events are processed one by one and the ones that
    still fail go to the DLQ, so a poison message cannot stall its partition.
    """

    name = "consume_events"

    def __init__(
        self,
        *,
        batch_size: int,
        poll_timeout: float,
        group_id: str | None = None,
        max_batch_attempts: int = 2,
        retry_backoff: float = 1.0,
        collect_between_batches: bool = False,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.collector = BatchCollector() if collect_between_batches else None
        self.poll_timeout = poll_timeout
        self.group_id = group_id
        self.max_batch_attempts = max_batch_attempts
        self.retry_backoff = retry_backoff
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.handler: EventBatchHandler | None = None
        self._failures = 0
        self.handoff: Handoff | None = None

    def setup(self) -> None:
        # Push and queue each batch's deliveries on one side thread, in commit order, while the next
        # batch is decided; teardown waits for it, so a stop loses nothing already committed.
        self.handoff = Handoff(threaded=True)
        self.consumer = Consumer(consumer_config(group_id=self.group_id))
        self.producer = Producer(producer_config())
        self.handler = EventBatchHandler(producer=self.producer, handoff=self.handoff)
        self.consumer.subscribe([topic("cart-events-enriched"), topic("prediction-results")])
        if self.collector is not None:
            self.collector.start()

    def run_once(self) -> None:
        batch = self.next_batch()
        if batch:
            self.process(batch)

    def next_batch(self) -> list[Message]:
        """The next batch: wait (at most ``poll_timeout``) for ONE message, then take only what the client
        has already fetched, up to ``batch_size``. A trickle is decided the moment it arrives instead of
        waiting for a full batch or a timeout; a backlog still drains in full batches, because while one
        batch is decided the client keeps fetching the next."""
        assert self.consumer is not None
        assert self.handoff is not None
        # Sends of the last batch wait for the next batch's caps read; with nothing to read now, they
        # are written before the wait.
        first = self.consumer.poll(0) if self.handoff.caps_waiting() else None
        if first is None:
            self.handoff.caps_record_pending()
            first = self.consumer.poll(self.poll_timeout)
        if first is None:
            return []
        messages = [first]
        if self.batch_size > 1:
            messages.extend(self.consumer.consume(num_messages=self.batch_size - 1, timeout=0))
        return [m for m in messages if self._usable(m)]

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            logger.warning("kafka_consume_error", error=str(error))
        return False

    def process(self, batch: Sequence[Message]) -> BatchResult | None:
        """Process one batch and store its offsets; on failure rewind so the batch comes again."""
        assert self.consumer is not None
        assert self.handler is not None
        metrics.BATCH_SIZE.observe(len(batch))
        _observe_queue_time(batch)
        try:
            with metrics.BATCH_SECONDS.time():
                if self._failures >= self.max_batch_attempts:
                    result = self.handler.handle_one_by_one(batch)
                else:
                    result = self.handler.handle(batch)
        except Exception:
            self._failures += 1
            metrics.BATCH_FAILURES.inc()
            logger.exception("consumer_batch_failed", size=len(batch), attempt=self._failures)
            self._rewind(batch)
            # Drop a connection the failure broke (the next batch reconnects); never one an enclosing
            # transaction owns — the command runs outside any, a test harness may not.
            if not connection.in_atomic_block:
                close_old_connections()
            self.wait(self.retry_backoff)
            return None
        self._failures = 0
        self.consumer.store_offsets(offsets=_next_offsets(batch))
        self._report_lag(batch)
        if self.collector is not None:
            self.collector.between_batches()
        return result

    def _rewind(self, batch: Sequence[Message]) -> None:
        assert self.consumer is not None
        first: dict[tuple[str, int], int] = {}
        for message in batch:
            key = (message.topic() or "", message.partition() or 0)
            offset = message.offset() or 0
            first[key] = min(offset, first.get(key, offset))
        for (name, partition), offset in first.items():
            try:
                self.consumer.seek(TopicPartition(name, partition, offset))
            except Exception:
                # The partition was revoked meanwhile: its new owner starts from the committed offset.
                logger.warning("consumer_rewind_failed", topic=name, partition=partition)

    def _report_lag(self, batch: Sequence[Message]) -> None:
        assert self.consumer is not None
        last: dict[tuple[str, int], int] = {}
        for message in batch:
            last[(message.topic() or "", message.partition() or 0)] = message.offset() or 0
        for (name, partition), offset in last.items():
            try:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(name, partition), cached=True)
            except Exception:  # noqa: S112  (lag is informative; a missing sample is fine)
                continue
            if high is not None and high >= 0:
                metrics.CONSUMER_LAG.labels(name, str(partition)).set(max(0, high - offset - 1))

    def teardown(self) -> None:
        if self.collector is not None:
            self.collector.stop()
        if self.handoff is not None:
            self.handoff.close()
        if self.producer is not None:
            self.producer.flush(10)
        if self.consumer is not None:
            self.consumer.close()


class BatchCollector:
    """Python's cyclic garbage collector, run between batches instead of in the middle of them.

    A batch of 500 events keeps some 100,000 objects alive for its duration. With the collector's
    default thresholds they survive the young collections that run mid-batch, reach the oldest
    generation, and make full collections frequent and slow (one ``bench.decisions`` run: 22 full
    collections of up to 190 ms each, 2.7 s in all). Between batches instead: 17 to 22 % less CPU per
    event in alternating runs (docs/performance.md). The start-up heap (Django, the project, the
    campaign set) is frozen out of every scan, automatic collection is off, and each batch ends with a
    young collection, when its objects are gone; a full collection runs at most every
    ``full_every_seconds`` (at 500 events/s a trickle makes 100 small batches a second, and a full
    collection costs tens of milliseconds). Reference counting frees nearly everything at once anyway;
    the collector is only for cycles."""

    def __init__(self, *, full_every_seconds: float = 60.0) -> None:
        self.full_every_seconds = full_every_seconds
        self._last_full = time.monotonic()
        self._was_enabled = True

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        self._last_full = time.monotonic()

    def between_batches(self) -> None:
        now = time.monotonic()
        if now - self._last_full >= self.full_every_seconds:
            gc.collect()
            self._last_full = now
        else:
            gc.collect(1)

    def stop(self) -> None:
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()


def _observe_queue_time(batch: Sequence[Message]) -> None:
    """How long each message waited between the broker and its batch (producer clocks may run ahead of
    ours: never below zero). Messages without a timestamp are skipped."""
    now_ms = time.time() * 1000
    observe = metrics.QUEUE_SECONDS.observe
    for message in batch:
        kind, stamp = message.timestamp()
        if kind != TIMESTAMP_NOT_AVAILABLE:
            observe(max(0.0, now_ms - stamp) / 1000)


def _next_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        key = (message.topic() or "", message.partition() or 0)
        last[key] = max(message.offset() or 0, last.get(key, -1))
    return [TopicPartition(name, partition, offset + 1) for (name, partition), offset in last.items()]


class Command(BaseCommand):
    help = "Consume cart-events-enriched and prediction-results and decide interventions until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=settings.KAFKA_CONSUMER_BATCH_SIZE)
        parser.add_argument("--poll-timeout", type=float, default=settings.KAFKA_CONSUMER_POLL_TIMEOUT)
        parser.add_argument("--group", default=None, help="Consumer group (default KAFKA_CONSUMER_GROUP)")

    def handle(self, *args: Any, **options: Any) -> None:
        EventConsumer(
            batch_size=options["batch_size"],
            poll_timeout=options["poll_timeout"],
            group_id=options["group"],
            collect_between_batches=True,
        ).run()
