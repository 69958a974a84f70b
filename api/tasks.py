"""Housekeeping for the API (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from api.idempotency import idempotency_records_purge
from core.observability import get_logger, housekeeping_log

logger = get_logger(__name__)


@shared_task(name="api.idempotency_records_purge")
def idempotency_records_purge_task() -> int:
    """Drop Idempotency-Key records older than 24 hours; safe to run twice or concurrently."""
    purged = idempotency_records_purge()
    housekeeping_log(logger=logger, event="idempotency_records_purged", purged=purged)
    return purged
