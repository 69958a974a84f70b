from __future__ import annotations

from typing import Any

from confluent_kafka import Producer
from django.core.management.base import BaseCommand, CommandParser

from messaging import metrics
from messaging.kafka import producer_config
from messaging.models import OutboxMessage
from messaging.services import outbox_publish_batch
from messaging.workers import Worker


class OutboxRelay(Worker):
    name = "relay_outbox"

    def __init__(self, *, batch_size: int, idle_seconds: float) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.producer: Producer | None = None

    def setup(self) -> None:
        self.producer = Producer(producer_config())

    def run_once(self) -> None:
        assert self.producer is not None
        published = outbox_publish_batch(producer=self.producer, limit=self.batch_size)
        if published < self.batch_size:
            metrics.OUTBOX_BACKLOG.set(OutboxMessage.objects.filter(published_at__isnull=True).count())
            self.wait(self.idle_seconds)

    def teardown(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)


class Command(BaseCommand):
    help = "Publish outbox rows (intervention-events, conversion-events) to Kafka until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--idle-seconds", type=float, default=0.05)

    def handle(self, *args: Any, **options: Any) -> None:
        OutboxRelay(batch_size=options["batch_size"], idle_seconds=options["idle_seconds"]).run()
