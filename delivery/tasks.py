"""Beat tasks of the decision path: release delayed interventions, expire stale ones, recompute what the
bandit and the channel choice learned (delivery/allocation.py); and the send runs of scheduled campaigns
(delivery/runs.py).

Release and expiry claim their rows with SKIP LOCKED inside the service, so overlapping runs never act
twice. A send run is walked by one chain of steps per chunk of its members; a step locks its chunk's row
and moves the chunk's cursor in the batch's transaction, so a step run twice (a redelivered task,
reconcile beside the chain) walks each member once.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from core.observability import get_logger, housekeeping_log
from delivery import runs
from delivery.allocation import allocations_refresh
from delivery.services import decisions_release_due
from interventions.services import interventions_expire

logger = get_logger(__name__)
# A rollout waiting for the next shopper's local time polls at most this often (a countdown longer than
# the broker's visibility timeout would be redelivered; reconcile also picks up a run left waiting).
_WAIT_MAX_SECONDS = 30.0


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


@shared_task(name="delivery.tasks.allocations_refresh_task", ignore_result=True)
def allocations_refresh_task() -> int:
    """Beat, every minute: the bandit campaigns' allocations and the channel rates, into Redis."""
    snapshots = allocations_refresh()
    housekeeping_log(logger=logger, event="allocations_refreshed", campaigns=len(snapshots))
    return len(snapshots)


@shared_task(name=runs.START_TASK, ignore_result=True)
def send_run_start_task(campaign_id: int) -> int | None:
    """Beat, at a tick of a scheduled campaign: make the tick's run, snapshot its audience, walk it."""
    run = runs.send_run_create(campaign_id=campaign_id)
    if run is None:
        return None
    _chunks_start(run_id=runs.send_run_snapshot(run_id=run.pk).pk)
    return run.pk


def _chunks_start(*, run_id: int) -> None:
    """One chain of steps per chunk of the run: the workers walk them side by side."""
    for chunk in runs.send_run_chunks(run_id=run_id):
        send_run_step_task.delay(run_id=run_id, chunk=chunk)


@shared_task(name=runs.STEP_TASK, ignore_result=True, bind=True, max_retries=5)
def send_run_step_task(self: Any, run_id: int, chunk: int | None = None) -> int:
    """One batch of a run's chunk; queues the chunk's next one until it is done, or the run is paused
    or cancelled."""
    try:
        result = runs.send_run_step(run_id=run_id, chunk=chunk)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            runs.send_run_fail(run_id=run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
    if result.more:
        send_run_step_task.delay(run_id=run_id, chunk=chunk)
    elif result.next_due is not None:
        wait = (result.next_due - timezone.now()).total_seconds()
        send_run_step_task.apply_async(
            kwargs={"run_id": run_id, "chunk": chunk}, countdown=min(max(wait, 1.0), _WAIT_MAX_SECONDS)
        )
    return result.walked


@shared_task(name="delivery.tasks.send_runs_reconcile_task", ignore_result=True)
def send_runs_reconcile_task() -> int:
    """Beat: snapshot runs left scheduled, step runs whose chain stopped, report unbalanced books."""
    outcome = runs.send_runs_reconcile()
    for run_id in outcome.snapshotted:
        _chunks_start(run_id=runs.send_run_snapshot(run_id=run_id).pk)
    for run_id, chunk in outcome.stepped:
        send_run_step_task.delay(run_id=run_id, chunk=chunk)
    return len(outcome.unbalanced)
