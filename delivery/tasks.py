"""Beat tasks of the decision path: release delayed interventions, expire stale ones.

Both claim their rows with SKIP LOCKED inside the service, so overlapping runs never act twice.
"""

from __future__ import annotations

from celery import shared_task

from delivery.services import decisions_release_due
from interventions.services import interventions_expire


@shared_task(name="delivery.tasks.interventions_release_due_task", ignore_result=True)
def interventions_release_due_task() -> int:
    outcome = decisions_release_due()
    return len(outcome.created) + outcome.cancelled


@shared_task(name="delivery.tasks.interventions_expire_task", ignore_result=True)
def interventions_expire_task() -> int:
    return interventions_expire()
