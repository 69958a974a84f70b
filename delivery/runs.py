"""Send runs of scheduled campaigns: from a tick of the campaign's schedule to a decision per member.

1. ``send_run_create`` — beat sends ``send_run_start_task`` at every tick; the run is keyed by
   (campaign, tick), so a tick delivered twice (beat restarted, a task redelivered) makes one run.
2. ``send_run_snapshot`` (one transaction) evaluates the campaign's segment IN SQL and snapshots it
   into ``SendRunMember`` with ONE ``INSERT … SELECT``: each member gets a due time — the run's start, or
   with ``send_local_time`` the first such time on the shopper's own clock (zone from the profile, the
   campaign's schedule zone when unknown) — and a position numbered by (due time, user id). The members
   are dealt into ``SEND_RUN_WALKERS`` chunks (``SendRunChunk``: position modulo the chunk count, so each
   chunk keeps the due-time order and a time-zone rollout keeps every chunk busy), one chain of step
   tasks each: several workers walk one run side by side.
3. ``send_run_step`` (one transaction per batch of a chunk) locks the chunk row, checks the run is still
   running (pause and cancel lock every chunk, so they act between two batches), takes the chunk's next
   members after its cursor whose time has come (keyset pagination on position: memory bounded by the
   batch, never by the audience), skips those who left through an exit event after the snapshot, and
   hands the rest to the decision path (``decisions_process_batch``) as one event each with the id
   ``run:<run>:<user>`` — the same rules as a triggered campaign: conditions and segment again, consent,
   caps, the daily budget, quiet hours, holdout, variant, channel, rendering. It then reads back the
   decision each member got, settles the members, moves the chunk's cursor and, last (the run row is
   locked only from there to the commit), adds the batch to the run's books, in the same transaction.
   A crash anywhere rolls the whole batch back and the next step takes it again; a decision committed
   by an earlier attempt is found by the (campaign, trigger event) key and never taken twice. A member
   whose render ran out of time stays planned behind the cursor and is retried (see below).
4. ``send_runs_reconcile`` (beat) starts the snapshot of runs left scheduled, steps the chunks of running
   runs whose chain of tasks stopped (a worker killed), and reports any run whose books do not balance.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Mod
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.schedules import RUN_START_TASK, cron_last_tick, cron_parse, zone_get
from campaigns.selectors import campaign_get
from core.bulk import rows_json
from core.errors import ConflictError, NotFoundError
from core.observability import get_logger
from delivery.events import SEND_RUN_EVENT_KIND, InboundEvent
from delivery.models import SendRun, SendRunChunk, SendRunMember
from delivery.selectors import CampaignPlan, CampaignSet
from delivery.services import decisions_process_batch
from interventions.models import Intervention
from interventions.selectors import decisions_for_triggers
from personalization.rules import compile_rule
from personalization.selectors import profiles_ordered_since, segment_members

logger = get_logger(__name__)

SEND_RUN_TRIGGER = "send_run"
START_TASK = RUN_START_TASK
STEP_TASK = "delivery.tasks.send_run_step_task"
BATCH_SIZE = 500
FINAL_STATES = frozenset({SendRun.State.FINISHED, SendRun.State.CANCELLED, SendRun.State.FAILED})
# Exit events a profile remembers the time of: a member who did this after the snapshot is skipped.
_EXIT_SEEN_ON_PROFILE = "checkout_completed"


class SendRunStateError(ConflictError):
    code = "invalid_run_state"


@dataclass(frozen=True)
class StepResult:
    state: str
    walked: int = 0
    # When the next member is due, if none is due yet (a time-zone rollout).
    next_due: datetime | None = None

    @property
    def more(self) -> bool:
        return self.state == SendRun.State.RUNNING and self.walked > 0


def member_event_id(*, run_id: int, user_id: str) -> str:
    """The trigger event id of a member's decision: fixed by (run, shopper), within the column's 128."""
    event_id = f"run:{run_id}:{user_id}"
    if len(event_id) <= 128:
        return event_id
    return f"run:{run_id}:sha256:{hashlib.sha256(user_id.encode()).hexdigest()}"


# --- Start: a run per tick, its audience snapshotted ---------------------------------------------------


def send_run_create(*, campaign_id: int, now: datetime | None = None) -> SendRun | None:
    """The run of the campaign's current tick (created once); None when the campaign is not an active
    scheduled one or has no tick now."""
    now = now or timezone.now()
    campaign = campaign_get(campaign_id=campaign_id)
    if campaign is None or campaign.kind != Campaign.Kind.SCHEDULED:
        logger.warning("send_run_not_scheduled", campaign_id=campaign_id)
        return None
    if campaign.status != Campaign.Status.ACTIVE:
        logger.info("send_run_campaign_not_active", campaign_id=campaign_id, status=campaign.status)
        return None
    tick: datetime | None
    if campaign.cron:
        zone = zone_get(campaign.schedule_timezone)
        tick = cron_last_tick(cron=cron_parse(campaign.cron), zone=zone, at=now) if zone else None
    else:
        tick = campaign.send_at
    if tick is None or tick > now:
        logger.warning("send_run_no_tick", campaign_id=campaign_id)
        return None
    run, created = SendRun.objects.get_or_create(campaign=campaign, tick=tick)
    if created:
        logger.info("send_run_created", run_id=run.pk, campaign_id=campaign_id, tick=tick.isoformat())
    return run


@transaction.atomic
def send_run_snapshot(*, run_id: int, now: datetime | None = None) -> SendRun:
    """Snapshot the audience of a scheduled run and set it running; a run past that is left as it is."""
    now = now or timezone.now()
    run = SendRun.objects.select_for_update().get(pk=run_id)
    if run.state != SendRun.State.SCHEDULED:
        return run
    campaign = campaign_get(campaign_id=run.campaign_id)
    assert campaign is not None
    if campaign.segment is None:
        run.state, run.error, run.finished_at = SendRun.State.FAILED, "the campaign has no segment", now
        run.save()
        return run
    audience_sql, audience_params = (
        segment_members(segment=campaign.segment)
        .values_list("id", "user_id", "timezone")
        .query.sql_with_params()
    )
    zone = campaign.schedule_timezone if zone_get(campaign.schedule_timezone) else "UTC"
    if campaign.send_local_time is not None:
        # The first send_local_time on the shopper's clock at or after the start; a zone PostgreSQL does
        # not know (a typo in a profile) falls back to the campaign's.
        local = "(((p.start AT TIME ZONE z.zone)::date + {days} + p.local) AT TIME ZONE z.zone)"
        due = (
            f"CASE WHEN {local.format(days=0)} >= p.start THEN {local.format(days=0)} "
            f"ELSE {local.format(days=1)} END"
        )
    else:
        due = "p.start"
    members = SendRunMember._meta.db_table
    sql = (
        "WITH p AS (SELECT %s::timestamptz AS start, %s::time AS local, %s::text AS zone, "  # noqa: S608
        "%s::bigint AS run), "  # (the audience is Django's SQL, values bound; identifiers from models)
        f"audience(id, user_id, tz) AS ({audience_sql}), "
        "zones AS (SELECT name FROM pg_timezone_names) "
        f'INSERT INTO "{members}" (run_id, position, profile_id, user_id, due_at, state, reason, attempts) '
        "SELECT p.run, row_number() OVER (ORDER BY d.due, a.user_id), a.id, a.user_id, d.due, "
        "'planned', '', 0 "
        "FROM audience a CROSS JOIN p "
        "CROSS JOIN LATERAL (SELECT COALESCE((SELECT name FROM zones WHERE name = a.tz), p.zone) AS zone) z "
        f"CROSS JOIN LATERAL (SELECT {due} AS due) d"
    )
    params = [now, campaign.send_local_time, zone, run.pk, *audience_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        size = cursor.rowcount
    run.audience_size = size
    run.state = SendRun.State.RUNNING
    run.started_at = now
    run.save()
    walkers = max(1, min(int(settings.SEND_RUN_WALKERS), size))
    SendRunChunk.objects.bulk_create(
        [SendRunChunk(run=run, index=index, of=walkers) for index in range(walkers)]
    )
    logger.info(
        "send_run_snapshotted", run_id=run.pk, campaign_id=run.campaign_id, audience=size, chunks=walkers
    )
    return run


def send_run_chunks(*, run_id: int) -> list[int]:
    """The indexes of the run's chunks still walking (one step task chain each)."""
    return list(
        SendRunChunk.objects.filter(run_id=run_id, done=False)
        .order_by("index")
        .values_list("index", flat=True)
    )


# --- The walk: one batch per step -----------------------------------------------------------------------


def _plan(campaign: Campaign) -> CampaignSet:
    """The campaign as the decision path sees it, keyed by the send runs' trigger."""
    assert campaign.segment is not None
    plan = CampaignPlan(
        campaign=campaign,
        variants=tuple(campaign.variants.all()),
        condition=compile_rule(campaign.conditions or ""),
        segment=compile_rule(campaign.segment.rules),
        exit_events=frozenset(e for e in (campaign.exit_events or []) if isinstance(e, str)),
    )
    return CampaignSet(
        version=f"send-run:{campaign.pk}",
        plans=(plan,),
        by_trigger={SEND_RUN_TRIGGER: [plan]},
        by_exit_event={},
    )


def send_run_step(
    *,
    run_id: int,
    chunk: int | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    after_commit: bool = True,
) -> StepResult:
    """Decide the next batch of due members of ``chunk``; see the module docstring (step 3). Without a
    chunk, the first chunk (by index) that has a batch due walks it (one caller walking the whole run)."""
    now = now or timezone.now()
    if chunk is not None:
        return _chunk_step(
            run_id=run_id, index=chunk, now=now, batch_size=batch_size, after_commit=after_commit
        )
    next_due: datetime | None = None
    for index in send_run_chunks(run_id=run_id):
        result = _chunk_step(
            run_id=run_id, index=index, now=now, batch_size=batch_size, after_commit=after_commit
        )
        if result.walked or result.state != SendRun.State.RUNNING:
            return result
        if result.next_due is not None:
            next_due = min(next_due, result.next_due) if next_due else result.next_due
    state = SendRun.objects.filter(pk=run_id).values_list("state", flat=True).first()
    return StepResult(state=state or SendRun.State.FAILED, next_due=next_due)


def _chunk_members(chunk: SendRunChunk) -> QuerySet[SendRunMember]:
    members = SendRunMember.objects.filter(run_id=chunk.run_id)
    if chunk.of > 1:
        members = members.alias(slot=Mod("position", chunk.of)).filter(slot=chunk.index)
    return members


def _chunk_step(*, run_id: int, index: int, now: datetime, batch_size: int, after_commit: bool) -> StepResult:
    with transaction.atomic():
        # The chunk's row lock serialises its steps (a redelivered task, reconcile beside the chain). The
        # run row is read without a lock: a move (pause, cancel) locks every chunk before the run, so it
        # waits for the batches in progress, and a step that starts after it sees the new state.
        chunk = SendRunChunk.objects.select_for_update().filter(run_id=run_id, index=index).first()
        run = SendRun.objects.get(pk=run_id)
        if run.state != SendRun.State.RUNNING or chunk is None or chunk.done:
            return StepResult(state=run.state)
        members = _chunk_members(chunk)
        batch = list(
            members.filter(position__gt=chunk.cursor)
            .order_by("position")
            .values_list("position", "user_id", "due_at", "attempts")[:batch_size]
        )
        due = [m for m in batch if m[2] <= now]
        retrying = False
        if not due:
            # Members left behind the cursor for another render (see _render_retry_later), once due.
            due = _retries_due(members=members, cursor=chunk.cursor, now=now, limit=batch_size)
            retrying = bool(due)
        if not due:
            waiting = _retry_next_due(members=members, cursor=chunk.cursor)
            if batch:
                first = batch[0][2]
                return StepResult(state=run.state, next_due=min(first, waiting) if waiting else first)
            if waiting is not None:
                return StepResult(state=run.state, next_due=waiting)
            chunk.done = True
            chunk.save()
            run = SendRun.objects.select_for_update().get(pk=run_id)
            # Under the run's lock, the other chunks' last steps have committed or wait for this one.
            if not SendRunChunk.objects.filter(run_id=run_id, done=False).exists():
                _finish(run, now=now)
            return StepResult(state=run.state)
        campaign = campaign_get(campaign_id=run.campaign_id)
        assert campaign is not None
        assert run.started_at is not None
        exited: set[str] = set()
        if _EXIT_SEEN_ON_PROFILE in (campaign.exit_events or []):
            exited = profiles_ordered_since(user_ids=[m[1] for m in due], since=run.started_at)
        attempts_max = max(1, int(settings.SEND_RUN_RENDER_ATTEMPTS))
        events = [
            InboundEvent(
                kind=SEND_RUN_EVENT_KIND,
                event_id=member_event_id(run_id=run.pk, user_id=user_id),
                trigger=SEND_RUN_TRIGGER,
                user_id=user_id,
                occurred_at=due_at,
                payload={
                    "event_type": SEND_RUN_TRIGGER,
                    "run_id": run.pk,
                    # A render out of time leaves the member for later, until its last attempt.
                    "render_retry": attempts + 1 < attempts_max,
                },
            )
            for _, user_id, due_at, attempts in due
            if user_id not in exited
        ]
        retry: set[str] = set()
        if events:
            outcome = decisions_process_batch(
                events=events, campaigns=_plan(campaign), after_commit=after_commit
            )
            retry = set(outcome.render_retry)
        taken = decisions_for_triggers(
            campaign_id=campaign.pk,
            trigger_event_ids=[event.event_id for event in events if event.event_id not in retry],
        )
        rows = []
        again: list[int] = []
        decided = queued = 0
        suppressed: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        for position, user_id, _, _ in due:
            event_id = member_event_id(run_id=run.pk, user_id=user_id)
            decision = taken.get(event_id)
            if user_id in exited:
                state, reason, intervention_id = (
                    SendRunMember.State.SKIPPED,
                    f"exit:{_EXIT_SEEN_ON_PROFILE}",
                    None,
                )
                skipped[reason] += 1
            elif event_id in retry:
                again.append(position)
                continue
            elif decision is None:
                # The decision path took nothing: the conditions or segment no longer hold, or the
                # campaign ended.
                state, reason, intervention_id = SendRunMember.State.SKIPPED, "no_longer_matches", None
                skipped[reason] += 1
            else:
                state, intervention_id = SendRunMember.State.DECIDED, str(decision.id)
                reason = decision.suppression_reason
                decided += 1
                if decision.status == Intervention.Status.SUPPRESSED:
                    suppressed[reason] += 1
                else:
                    queued += 1
            rows.append(
                {"position": position, "state": state, "reason": reason, "intervention_id": intervention_id}
            )
        _members_settle(run_id=run.pk, rows=rows)
        if again:
            _render_retry_later(run_id=run.pk, positions=again, now=now)
        if not retrying:
            chunk.cursor = due[-1][0]
        chunk.save()
        # The books, last: the run's row lock is held only from here to the commit, so the chunks' steps
        # overlap everywhere but here.
        run = SendRun.objects.select_for_update().get(pk=run_id)
        run.decided += decided
        run.queued += queued
        run.suppressed = dict(Counter(run.suppressed) + suppressed)
        run.skipped = dict(Counter(run.skipped) + skipped)
        run.cursor = max(run.cursor, chunk.cursor)
        run.save()
    return StepResult(state=run.state, walked=len(due))


# --- Members whose render ran out of time -------------------------------------------------------------------
# The render budget is CPU time of the rendering thread, so running out of it says the template is slow,
# but a render can also run out of it behind a slow one (the template's cool-off refuses it at once for
# TEMPLATE_SLOW_COOLOFF_SECONDS). A run owes its members the message: such a member stays planned behind the
# cursor, due again after the cool-off, and is taken again once the walk has nothing else due; on its last
# attempt (SEND_RUN_RENDER_ATTEMPTS) a render out of time is suppressed as ``render_timeout``. The decision
# path wrote nothing for it (no intervention, no cap counted), so no member is decided twice.


def _render_retry_later(*, run_id: int, positions: list[int], now: datetime) -> None:
    again_at = now + timedelta(seconds=float(settings.TEMPLATE_SLOW_COOLOFF_SECONDS) + 1)
    SendRunMember.objects.filter(
        run_id=run_id, position__in=positions, state=SendRunMember.State.PLANNED
    ).update(attempts=F("attempts") + 1, due_at=again_at, reason="render_timeout")
    logger.warning("send_run_render_retry", run_id=run_id, members=len(positions), at=again_at.isoformat())


def _retries_due(
    *, members: QuerySet[SendRunMember], cursor: int, now: datetime, limit: int
) -> list[tuple[int, str, datetime, int]]:
    return list(
        members.filter(position__lte=cursor, state=SendRunMember.State.PLANNED, due_at__lte=now)
        .order_by("position")
        .values_list("position", "user_id", "due_at", "attempts")[:limit]
    )


def _retry_next_due(*, members: QuerySet[SendRunMember], cursor: int) -> datetime | None:
    return (
        members.filter(position__lte=cursor, state=SendRunMember.State.PLANNED)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )


def _members_settle(*, run_id: int, rows: list[dict[str, object]]) -> None:
    """Write the batch's member outcomes with ONE UPDATE (the rows as one JSON parameter)."""
    table = SendRunMember._meta.db_table
    sql = (
        f'UPDATE "{table}" AS m SET state = v.state, reason = v.reason, '  # noqa: S608  (fixed identifier)
        "intervention_id = v.intervention_id::uuid "
        "FROM jsonb_to_recordset(%s::jsonb) "
        "AS v(position integer, state text, reason text, intervention_id text) "
        "WHERE m.run_id = %s AND m.position = v.position AND m.state = 'planned'"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json(rows), run_id])


def _finish(run: SendRun, *, now: datetime) -> None:
    """A run is finished only when no member is left planned (checked, not assumed from the cursor)."""
    if SendRunMember.objects.filter(run_id=run.pk, state=SendRunMember.State.PLANNED).exists():
        return
    run.state, run.finished_at = SendRun.State.FINISHED, now
    run.save()
    logger.info("send_run_finished", run_id=run.pk, decided=run.decided, queued=run.queued)


def send_run_fail(*, run_id: int, error: str) -> None:
    SendRun.objects.filter(pk=run_id, state=SendRun.State.RUNNING).update(
        state=SendRun.State.FAILED, error=error[:2000], updated_at=timezone.now()
    )


# --- Pause, resume, cancel --------------------------------------------------------------------------------

_MOVES: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({SendRun.State.SCHEDULED, SendRun.State.RUNNING}), SendRun.State.PAUSED),
    "resume": (frozenset({SendRun.State.PAUSED, SendRun.State.FAILED}), SendRun.State.RUNNING),
    "cancel": (
        frozenset(
            {SendRun.State.SCHEDULED, SendRun.State.RUNNING, SendRun.State.PAUSED, SendRun.State.FAILED}
        ),
        SendRun.State.CANCELLED,
    ),
}


@transaction.atomic
def send_run_move(*, run_id: int, move: str) -> SendRun:
    """Pause, resume or cancel a run. Locking its chunks (then the run, the order the steps lock them in)
    waits for the batches in progress, so the move takes effect before the next batch of every chunk; a
    cancelled run leaves its undecided members planned (no decision was taken for them; already-decided
    ones keep their interventions)."""
    list(SendRunChunk.objects.select_for_update().filter(run_id=run_id).order_by("index").values("pk"))
    run = SendRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist")
    allowed, to_state = _MOVES[move]
    if run.state not in allowed:
        raise SendRunStateError(
            f"a {run.state} run cannot be {'cancelled' if move == 'cancel' else move + 'd'}",
            details={"state": [run.state]},
        )
    if move == "resume" and run.started_at is None:
        to_state = SendRun.State.SCHEDULED
    run.state = to_state
    run.error = "" if move == "resume" else run.error
    if to_state == SendRun.State.CANCELLED:
        run.finished_at = timezone.now()
    run.save()
    if move == "resume" and to_state == SendRun.State.RUNNING:
        chunks = send_run_chunks(run_id=run_id)
        transaction.on_commit(
            lambda: [
                current_app.send_task(STEP_TASK, kwargs={"run_id": run_id, "chunk": index})
                for index in chunks
            ]
        )
    logger.info("send_run_moved", run_id=run.pk, move=move, state=run.state)
    return run


# --- Reconciliation -----------------------------------------------------------------------------------------


@dataclass
class Books:
    run_id: int
    audience: int
    decided: int
    skipped: int
    failed: int
    planned: int
    counted_decided: int
    counted_skipped: int

    @property
    def balanced(self) -> bool:
        walked = self.decided + self.skipped + self.failed
        return (
            self.audience == walked + self.planned
            and self.decided == self.counted_decided
            and self.skipped == self.counted_skipped
        )


def send_run_books(*, run: SendRun) -> Books:
    """The run's counters against its members' states (one grouped query)."""
    by_state = dict(
        SendRunMember.objects.filter(run_id=run.pk)
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return Books(
        run_id=run.pk,
        audience=run.audience_size or 0,
        decided=by_state.get(SendRunMember.State.DECIDED, 0),
        skipped=by_state.get(SendRunMember.State.SKIPPED, 0),
        failed=by_state.get(SendRunMember.State.FAILED, 0),
        planned=by_state.get(SendRunMember.State.PLANNED, 0),
        counted_decided=run.decided,
        counted_skipped=sum(run.skipped.values()),
    )


@dataclass
class Reconciled:
    snapshotted: list[int]
    stepped: list[tuple[int, int]]  # (run, chunk)
    unbalanced: list[Books]


def send_runs_reconcile(*, now: datetime | None = None) -> Reconciled:
    """Restart what stopped and report what does not add up; see the module docstring (step 4)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SEND_RUN_STALLED_AFTER_SECONDS)
    scheduled = list(
        SendRun.objects.filter(state=SendRun.State.SCHEDULED, updated_at__lt=stale).values_list(
            "pk", flat=True
        )
    )
    # A chunk of a running run whose row has not moved lost its chain of steps.
    stalled = list(
        SendRunChunk.objects.filter(
            run__state=SendRun.State.RUNNING, done=False, updated_at__lt=stale
        ).values_list("run_id", "index")
    )
    unbalanced = []
    recent = SendRun.objects.filter(Q(finished_at__isnull=True) | Q(finished_at__gte=now - timedelta(days=1)))
    for run in recent.exclude(state=SendRun.State.SCHEDULED):
        books = send_run_books(run=run)
        if not books.balanced:
            unbalanced.append(books)
            logger.error("send_run_books_unbalanced", **books.__dict__)
    return Reconciled(snapshotted=scheduled, stepped=stalled, unbalanced=unbalanced)
