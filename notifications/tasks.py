"""Send tasks, one per channel queue, and the beat sweeps. Thin: an id in, one service call.

Every task is safe to run twice (the send ledger's claim), which is what makes the project-wide late
acknowledgement and reject-on-worker-lost safe: a task whose worker died mid-send is delivered again and
finds its row already claimed.
"""

from __future__ import annotations

from celery import shared_task

from core.observability import get_logger, housekeeping_log
from notifications import services, sweeps

logger = get_logger(__name__)


@shared_task(name="notifications.delivery_send_email", queue="email")
def delivery_send_email(delivery_id: str) -> str:
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(name="notifications.delivery_send_sms", queue="sms")
def delivery_send_sms(delivery_id: str) -> str:
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(name="notifications.delivery_send_push", queue="push")
def delivery_send_push(delivery_id: str) -> str:
    return services.delivery_send(delivery_id=delivery_id)


@shared_task(name="notifications.deliveries_send")
def deliveries_send(delivery_ids: list[str]) -> dict[str, int]:
    """A batch of one channel; published on that channel's queue by ``deliveries_enqueue``."""
    return services.deliveries_send(delivery_ids=delivery_ids)


@shared_task(name="notifications.deliveries_requeue_due")
def deliveries_requeue_due() -> int:
    requeued = sweeps.deliveries_requeue_due()
    housekeeping_log(logger=logger, event="deliveries_requeued", requeued=requeued)
    return requeued


@shared_task(name="notifications.deliveries_settle_stuck")
def deliveries_settle_stuck() -> dict[str, int]:
    settled = sweeps.deliveries_settle_stuck()
    housekeeping_log(logger=logger, event="deliveries_settled", **settled)
    return settled
