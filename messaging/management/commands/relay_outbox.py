from __future__ import annotations

from typing import Any

from confluent_kafka import Producer
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from core.observability import get_logger
from messaging import metrics
from messaging.kafka import producer_config
from messaging.models import OutboxMessage
from messaging.services import outbox_publish_batch
from messaging.workers import Worker

logger = get_logger(__name__)


class OutboxRelay(Worker):
    """Publishes the outbox until stopped; survives Kafka (and PostgreSQL) being away.

    A message the broker has not acknowledged within ``message_timeout`` fails definitively in the
    producer (instead of lingering in its queue and being sent later, next to the copy a later batch
    publishes again), its row stays unpublished with the error, and the relay backs off exponentially
    up to ``max_backoff`` before trying again. Nothing is lost: the row is the source of truth.
    """

    name = "relay_outbox"

    def __init__(
        self,
        *,
        batch_size: int,
        idle_seconds: float,
        message_timeout: float = 5.0,
        max_backoff: float = 30.0,
        producer_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.message_timeout = message_timeout
        self.max_backoff = max_backoff
        self.producer_overrides = producer_overrides or {}
        self.producer: Producer | None = None
        self.failures = 0

    def setup(self) -> None:
        self.producer = Producer(
            producer_config(
                **{"message.timeout.ms": int(self.message_timeout * 1000), **self.producer_overrides}
            )
        )

    def run_once(self) -> None:
        assert self.producer is not None
        try:
            published = outbox_publish_batch(
                producer=self.producer, limit=self.batch_size, flush_timeout=self.message_timeout + 5
            )
            backlog = (
                OutboxMessage.objects.filter(published_at__isnull=True).count()
                if published < self.batch_size
                else self.batch_size
            )
        except DatabaseError:
            logger.exception("outbox_relay_database_error")
            close_old_connections()
            self._back_off()
            return
        if published == 0 and backlog and self._failing():
            # Rows are waiting, nothing went out and attempts failed: the broker is away.
            self._back_off()
            metrics.OUTBOX_BACKLOG.set(backlog)
            return
        self.failures = 0
        if published < self.batch_size:
            metrics.OUTBOX_BACKLOG.set(backlog)
            self.wait(self.idle_seconds)

    def _failing(self) -> bool:
        # Rows committed after this batch's read are a backlog too, but not a failure.
        return OutboxMessage.objects.filter(published_at__isnull=True, attempts__gt=0).exists()

    def _back_off(self) -> None:
        self.failures += 1
        delay = min(self.max_backoff, self.idle_seconds * 2**self.failures)
        logger.warning("outbox_relay_backing_off", seconds=round(delay, 2), failures=self.failures)
        self.wait(delay)

    def teardown(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)


class Command(BaseCommand):
    help = "Publish outbox rows (intervention-events, conversion-events) to Kafka until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--idle-seconds", type=float, default=0.05)
        parser.add_argument("--message-timeout", type=float, default=5.0)
        parser.add_argument("--max-backoff", type=float, default=30.0)

    def handle(self, *args: Any, **options: Any) -> None:
        OutboxRelay(
            batch_size=options["batch_size"],
            idle_seconds=options["idle_seconds"],
            message_timeout=options["message_timeout"],
            max_backoff=options["max_backoff"],
        ).run()
