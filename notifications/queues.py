"""Which Celery queue and task carry a delivery to a worker.

Publishing a delivery twice is harmless: the worker's claim lets one copy through.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from celery import current_app

SEND_CHANNELS = ("email", "sms", "push")
TASK_FOR_CHANNEL = {
    "email": "notifications.delivery_send_email",
    "sms": "notifications.delivery_send_sms",
    "push": "notifications.delivery_send_push",
}
BATCH_TASK = "notifications.deliveries_send"


def delivery_publish(
    *, delivery_id: UUID | str, channel: str, countdown: float | None = None, producer: Any = None
) -> None:
    """One delivery on its channel's queue; ``producer``: a pooled producer the caller holds already."""
    current_app.send_task(
        TASK_FOR_CHANNEL[channel],
        args=[str(delivery_id)],
        queue=channel,
        countdown=countdown,
        producer=producer,
    )


def deliveries_publish(*, delivery_ids: list[str], channel: str, producer: Any = None) -> None:
    """Several deliveries of one channel in one task message."""
    current_app.send_task(BATCH_TASK, args=[delivery_ids], queue=channel, producer=producer)
