from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Producer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from delivery.event_handlers import DeadLetterRecord, dlq_read, dlq_replay, dlq_topic
from messaging.kafka import producer_config


class Command(BaseCommand):
    help = (
        "Inspect and replay the dead-letter topic: `dlq list [--reason R]`, `dlq show P:O`, "
        "`dlq replay P:O [P:O …] | --all [--reason R]`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "show", "replay"])
        parser.add_argument("positions", nargs="*", help="partition:offset of DLQ messages")
        parser.add_argument("--reason", help="only messages with this reason (e.g. not_json)")
        parser.add_argument("--all", action="store_true", help="replay every (matching) message")
        parser.add_argument("--limit", type=int, default=None, help="only the last N messages")

    def handle(self, *args: Any, **options: Any) -> None:
        records = dlq_read(limit=options["limit"])
        if options["reason"]:
            records = [r for r in records if r.payload.get("reason") == options["reason"]]
        action = options["action"]
        if action == "list":
            self._list(records)
            return
        selected = self._select(records, options["positions"], every=options["all"] and action == "replay")
        if action == "show":
            for record in selected:
                self.stdout.write(json.dumps({"position": record.position, **record.payload}, indent=2))
            return
        count = dlq_replay(records=selected, producer=Producer(producer_config()))
        self.stdout.write(self.style.SUCCESS(f"replayed {count} message(s) to their source topics"))

    def _list(self, records: list[DeadLetterRecord]) -> None:
        self.stdout.write(f"{len(records)} message(s) on {dlq_topic()}")
        for r in records:
            p = r.payload
            source = f"{p.get('topic')}[{p.get('partition')}]@{p.get('offset')}"
            error = str(p.get("error", ""))[:80]
            failed_at = str(p.get("failed_at", ""))[:19]
            self.stdout.write(f"{r.position:>10}  {failed_at}  {p.get('reason', ''):<18} {source}  {error}")

    def _select(
        self, records: list[DeadLetterRecord], positions: list[str], *, every: bool
    ) -> list[DeadLetterRecord]:
        if every:
            return records
        if not positions:
            raise CommandError("name messages as partition:offset (see `dlq list`), or --all to replay all")
        by_position = {r.position: r for r in records}
        missing = [p for p in positions if p not in by_position]
        if missing:
            raise CommandError(f"not on the DLQ: {', '.join(missing)}")
        return [by_position[p] for p in positions]
