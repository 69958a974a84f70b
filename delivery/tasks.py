"""Beat tasks of the decision path: release delayed interventions, expire stale ones.

Both claim their rows with SKIP LOCKED inside the service, so overlapping runs never act twice.
"""

from __future__ import annotations

from celery import shared_task

from core.observability import get_logger, housekeeping_log
from delivery.services import decisions_release_due
from interventions.services import interventions_expire

logger = get_logger(__name__)


@shared_task(name="delivery.tasks.interventions_release_due_task", ignore_result=True)
def interventions_release_due_task() -> int:
    outcome = decisions_release_due()
    housekeeping_log(
        logger=logger,
        event="interventions_released",
        released=len(outcome.created),
        cancelled=outcome.cancelled,
    )
    return len(outcome.created) + outcome.cancelled


@shared_task(name="delivery.tasks.interventions_expire_task", ignore_result=True)
def interventions_expire_task() -> int:
    expired = interventions_expire()
    housekeeping_log(logger=logger, event="interventions_expired", expired=expired)
    return expired
