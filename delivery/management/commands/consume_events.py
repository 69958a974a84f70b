from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer
from django.core.management.base import BaseCommand, CommandParser

from intervention_engine.observability import get_logger
from messaging.kafka import consumer_config, topic
from messaging.workers import Worker

logger = get_logger(__name__)


class EventConsumer(Worker):
    """Reads cart events and predictions in batches and runs the decision path on each batch."""

    name = "consume_events"

    def __init__(self, *, batch_size: int, poll_timeout: float) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.consumer: Consumer | None = None

    def setup(self) -> None:
        self.consumer = Consumer(consumer_config())
        self.consumer.subscribe([topic("cart-events-enriched"), topic("prediction-results")])

    def run_once(self) -> None:
        assert self.consumer is not None
        messages = self.consumer.consume(num_messages=self.batch_size, timeout=self.poll_timeout)
        for message in messages:
            if message.error() is None:
                self.consumer.store_offsets(message=message)

    def teardown(self) -> None:
        if self.consumer is not None:
            self.consumer.close()


class Command(BaseCommand):
    help = "Consume cart-events-enriched and prediction-results and decide interventions until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--poll-timeout", type=float, default=0.1)

    def handle(self, *args: Any, **options: Any) -> None:
        EventConsumer(batch_size=options["batch_size"], poll_timeout=options["poll_timeout"]).run()
