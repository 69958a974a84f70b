from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from django.db import connection, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone

from core.bulk import rows_json
from core.observability import get_logger
from messaging import metrics
from messaging.kafka import topic as topic_name
from messaging.models import OutboxMessage

logger = get_logger(__name__)


def outbox_enqueue_many(*, messages: Iterable[tuple[str, str, dict[str, Any]]]) -> list[OutboxMessage]:
    """Write (topic, key, payload) rows to the outbox inside the caller's transaction.

    ``topic`` is the contract name (``"intervention-events"``); the configured name is resolved here.
    """
    now = timezone.now()
    rows = [
        OutboxMessage(
            topic=topic_name(t), key=key, payload=payload, created_at=now, attempts=0, last_error=""
        )
        for t, key, payload in messages
    ]
    return OutboxMessage.objects.bulk_create(rows)


def outbox_enqueue_bulk(*, messages: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
    """:func:`outbox_enqueue_many` for hot paths: no model instances, one statement; returns the count."""
    table = OutboxMessage._meta.db_table
    rows = [{"t": topic_name(t), "k": key, "p": payload} for t, key, payload in messages]
    if not rows:
        return 0
    sql = (
        f'INSERT INTO "{table}" (topic, key, payload, created_at, attempts, last_error) '  # noqa: S608
        "SELECT m->>'t', m->>'k', m->'p', now(), 0, '' FROM jsonb_array_elements(%s::jsonb) "
        "WITH ORDINALITY AS r(m, n) ORDER BY n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json(rows)])
    return len(rows)


def outbox_enqueue(*, topic: str, key: str, payload: dict[str, Any]) -> OutboxMessage:
    return outbox_enqueue_many(messages=[(topic, key, payload)])[0]


def outbox_publish_batch(*, producer: Producer, limit: int = 500, flush_timeout: float = 10.0) -> int:
    """Publish up to ``limit`` unpublished rows in id order; returns how many were published.

    Rows are locked with SKIP LOCKED so several relays can run side by side without publishing a row
    twice. A row is stamped only after the broker acknowledged it; if the broker is down the rows stay
    unpublished and the next batch tries again (the idempotent producer de-duplicates retries).
    """
    with transaction.atomic():
        rows = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .order_by("id")[:limit]
        )
        if not rows:
            return 0
        failures: dict[int, str] = {}

        def on_delivery(row_id: int) -> Any:
            def callback(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    failures[row_id] = str(err)

            return callback

        for row in rows:
            producer.produce(
                row.topic,
                key=row.key.encode() if row.key else None,
                value=json.dumps(row.payload, separators=(",", ":")).encode(),
                on_delivery=on_delivery(row.pk),
            )
        remaining = producer.flush(flush_timeout)
        now = timezone.now()
        published = [row.pk for row in rows if row.pk not in failures] if remaining == 0 else []
        if published:
            OutboxMessage.objects.filter(pk__in=published).update(published_at=now)
        failed = [row for row in rows if row.pk not in published]
        for row in failed:
            row.attempts += 1
            row.last_error = failures.get(row.pk, "not acknowledged before the flush timeout")[:2000]
        if failed:
            OutboxMessage.objects.bulk_update(failed, ["attempts", "last_error"])
    metrics.OUTBOX_PUBLISHED.inc(len(published))
    if failed:
        metrics.OUTBOX_FAILED.inc(len(failed))
        logger.warning("outbox_publish_failed", count=len(failed), error=failed[0].last_error)
    return len(published)


def outbox_messages_rekey(
    *,
    topic: str,
    key: str,
    new_key: str,
    fields: dict[str, Any],
    drop: Sequence[str] = (),
    matching: dict[str, Any] | None = None,
) -> int:
    """Re-key a shopper's messages of ``topic`` (contract name), published or not, for an erasure: the
    key becomes ``new_key``, the payload takes ``fields`` over its own and loses ``drop``; ``matching``
    narrows to the messages whose payload holds those values. Returns how many. Unpublished rows are
    still published, in order, but only in their redacted form; what was published already lives on in
    Kafka until the topic's retention (docs/privacy.md)."""
    messages = OutboxMessage.objects.filter(topic=topic_name(topic), key=key)
    if matching:
        messages = messages.filter(payload__contains=matching)
    return messages.update(
        key=new_key, payload=RawSQL("(payload - %s::text[]) || %s::jsonb", [list(drop), json.dumps(fields)])
    )
