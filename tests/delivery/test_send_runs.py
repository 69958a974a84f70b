"""Send runs of scheduled campaigns: the audience snapshotted in SQL, walked in batches through the
decision path, with pause/resume/cancel, a crash-and-resume that decides nobody twice, exit events, and
the time-zone rollout across daylight-saving changes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, TemplateLocalization
from delivery import runs
from delivery.models import SendRun, SendRunChunk, SendRunMember
from interventions.models import Intervention
from personalization.models import Profile
from tests import fixtures as f
from tests.fixtures import run_started, run_walked, scheduled_campaign, shoppers

pytestmark = pytest.mark.django_db


def test_it_snapshots_the_segment_in_sql_and_decides_every_member_once():
    # given a scheduled campaign for gold shoppers, 7 gold and 3 silver
    campaign = scheduled_campaign()
    gold = shoppers(7)
    shoppers(3, tier="silver")

    # when its run starts and is walked in batches of 3
    run = run_walked(run_started(campaign), batch_size=3)

    # then the 7 gold shoppers were snapshotted and each has one pending email intervention
    assert (run.state, run.audience_size, run.decided, run.queued) == ("finished", 7, 7, 7)
    decided = Intervention.objects.filter(campaign=campaign)
    assert sorted(decided.values_list("user_id", flat=True)) == sorted(gold)
    assert set(decided.values_list("status", "channel")) == {("pending", "email")}
    assert SendRunMember.objects.filter(run=run, state="decided").count() == 7
    assert runs.send_run_books(run=run).balanced


def test_it_starts_one_run_per_tick_even_when_the_tick_is_delivered_twice():
    # given a one-off campaign whose time has come
    campaign = scheduled_campaign()
    shoppers(2)

    # when beat's task runs twice
    first = runs.send_run_create(campaign_id=campaign.pk)
    second = runs.send_run_create(campaign_id=campaign.pk)

    # then there is one run
    assert first is not None
    assert second is not None
    assert first.pk == second.pk
    assert SendRun.objects.filter(campaign=campaign).count() == 1


def test_it_resumes_an_interrupted_run_without_deciding_anyone_twice():
    # given a run of 6 whose first batch of 4 was decided and committed, but whose books were lost (the
    # worker died between the decisions and the cursor: here, the cursor and books are put back)
    campaign = scheduled_campaign()
    shoppers(6)
    run = run_started(campaign)
    runs.send_run_step(run_id=run.pk, batch_size=4, after_commit=False)
    SendRunMember.objects.filter(run=run).update(state="planned", reason="", intervention_id=None)
    SendRun.objects.filter(pk=run.pk).update(cursor=0, decided=0, queued=0, suppressed={}, skipped={})
    SendRunChunk.objects.filter(run=run).update(cursor=0, done=False)

    # when the run is walked again from the start
    run = run_walked(run)

    # then the 4 decided before are found, not decided again, and the books balance
    assert Intervention.objects.filter(campaign=campaign).count() == 6
    assert (run.state, run.decided, run.queued) == ("finished", 6, 6)
    assert runs.send_run_books(run=run).balanced


def test_it_skips_a_shopper_who_ordered_after_the_snapshot():
    # given a campaign that exits on checkout, and a run snapshotted with two shoppers
    campaign = scheduled_campaign(exit_events=["checkout_completed"])
    buyer, other = shoppers(2)
    run = run_started(campaign)

    # when one of them checks out before the run reaches them
    from delivery.services import decisions_process_batch

    decisions_process_batch(
        events=[f.cart_event(user_id=buyer, event_type="checkout_completed")],
        campaigns=f.active_set(),
        after_commit=False,
    )
    run = run_walked(run)

    # then the buyer is skipped with the reason, the other is decided
    assert list(Intervention.objects.filter(campaign=campaign).values_list("user_id", flat=True)) == [other]
    assert run.skipped == {"exit:checkout_completed": 1}
    assert SendRunMember.objects.get(run=run, user_id=buyer).state == "skipped"
    assert runs.send_run_books(run=run).balanced


def test_it_defers_a_member_in_quiet_hours_to_the_end_of_the_window_and_releases_it_then():
    # given a scheduled email campaign, a shopper whose quiet hours (in Tokyo) hold now and end in about
    # an hour, and one without quiet hours
    from delivery.services import decisions_release_due

    campaign = scheduled_campaign()
    quiet, awake = shoppers(2)
    tokyo = ZoneInfo("Asia/Tokyo")
    local_now = timezone.now().astimezone(tokyo)
    window_end = (local_now + timedelta(hours=1)).replace(second=0, microsecond=0)
    Profile.objects.filter(user_id=quiet).update(
        timezone="Asia/Tokyo",
        quiet_hours_start=(local_now - timedelta(hours=1)).time(),
        quiet_hours_end=window_end.time(),
    )

    # when the run is walked
    run = run_walked(run_started(campaign))

    # then the quiet shopper is decided, not suppressed: the email is scheduled for the end of the window
    held = Intervention.objects.get(campaign=campaign, user_id=quiet)
    assert (held.status, held.channel, held.suppression_reason) == ("scheduled", "email", "")
    assert held.scheduled_for == window_end
    assert Intervention.objects.get(campaign=campaign, user_id=awake).status == "pending"
    assert (run.state, run.decided, run.queued, run.suppressed) == ("finished", 2, 2, {})
    assert SendRunMember.objects.get(run=run, user_id=quiet).state == "decided"
    assert runs.send_run_books(run=run).balanced

    # and the release task leaves it alone before the window ends and queues its email after
    assert decisions_release_due(now=window_end - timedelta(seconds=1)).created == []
    released = decisions_release_due(now=window_end + timedelta(seconds=1))
    assert released.created == [held.pk]
    held.refresh_from_db()
    assert held.status == "pending"
    assert held.deliveries.filter(channel="email", status="queued").count() == 1


def test_it_pauses_resumes_and_cancels_between_batches():
    # given a run of 5 walked by batches of 2
    campaign = scheduled_campaign()
    shoppers(5)
    run = run_started(campaign)
    runs.send_run_step(run_id=run.pk, batch_size=2, after_commit=False)

    # when it is paused, a step comes, then it is resumed and one more batch runs, then cancelled
    runs.send_run_move(run_id=run.pk, move="pause")
    paused = runs.send_run_step(run_id=run.pk, batch_size=2, after_commit=False)
    runs.send_run_move(run_id=run.pk, move="resume")
    runs.send_run_step(run_id=run.pk, batch_size=2, after_commit=False)
    runs.send_run_move(run_id=run.pk, move="cancel")
    cancelled = runs.send_run_step(run_id=run.pk, batch_size=2, after_commit=False)

    # then the paused step and the cancelled step walked nobody; 4 were decided, 1 left planned
    run.refresh_from_db()
    assert (paused.state, paused.walked) == ("paused", 0)
    assert (cancelled.state, cancelled.walked) == ("cancelled", 0)
    assert (run.state, run.decided) == ("cancelled", 4)
    assert SendRunMember.objects.filter(run=run, state="planned").count() == 1
    assert runs.send_run_books(run=run).balanced


def test_it_refuses_to_resume_a_finished_run_with_a_conflict():
    # given a finished run
    campaign = scheduled_campaign()
    shoppers(1)
    run = run_walked(run_started(campaign))

    # when it is resumed, then it is refused with the state
    with pytest.raises(runs.SendRunStateError) as refused:
        runs.send_run_move(run_id=run.pk, move="resume")
    assert refused.value.status_code == 409
    assert refused.value.details == {"state": ["finished"]}


@pytest.mark.parametrize(
    ("start", "zone", "expected_utc"),
    [
        # Europe springs forward on Sunday 2026-03-29: 10:00 in Paris is 09:00 UTC the day before,
        # 08:00 on it.
        (datetime(2026, 3, 28, 0, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 3, 28, 9, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 3, 29, 8, 0, tzinfo=UTC)),
        # America springs forward on Sunday 2026-03-08: 10:00 in New York is 15:00 UTC, then 14:00.
        (
            datetime(2026, 3, 7, 12, 0, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 3, 7, 15, 0, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 3, 8, 14, 0, tzinfo=UTC),
        ),
        # Autumn: Europe falls back on 2026-10-25, America on 2026-11-01.
        (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 10, 25, 9, 0, tzinfo=UTC)),
        (
            datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
            "America/New_York",
            datetime(2026, 11, 1, 15, 0, tzinfo=UTC),
        ),
        # Started after 10:00 in Tokyo (UTC+9): the next day's 10:00.
        (datetime(2026, 3, 29, 3, 0, tzinfo=UTC), "Asia/Tokyo", datetime(2026, 3, 30, 1, 0, tzinfo=UTC)),
    ],
)
def test_it_rolls_a_local_time_send_across_zones_and_daylight_saving(start, zone, expected_utc):
    # given a campaign sending at 10:00 in each shopper's own time zone
    campaign = scheduled_campaign(send_local_time=time(10, 0), send_at=start)
    (user_id,) = shoppers(1, zone=zone)

    # when its run starts (on a frozen clock)
    run = run_started(campaign, now=start)

    # then the shopper is due at 10:00 on their clock, expressed in UTC
    member = SendRunMember.objects.get(run=run, user_id=user_id)
    assert member.due_at == expected_utc
    assert member.due_at.astimezone(ZoneInfo(zone)).time() == time(10, 0)


def test_it_releases_each_zone_when_its_clock_reaches_the_local_time():
    # given a 10:00-local send started at midnight UTC on Europe's DST day, to Paris, New York and an
    # unknown zone (which falls back to the campaign's, UTC)
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    campaign = scheduled_campaign(send_local_time=time(10, 0), send_at=start)
    (paris,) = shoppers(1, zone="Europe/Paris")
    (new_york,) = shoppers(1, zone="America/New_York")
    (unknown,) = shoppers(1, zone="Mars/Olympus_Mons")
    run = run_started(campaign, now=start)

    # when the run is stepped at 09:00 UTC (11:00 in Paris), then at 15:00 UTC (11:00 in New York)
    first = runs.send_run_step(run_id=run.pk, now=start + timedelta(hours=9), after_commit=False)
    waiting = runs.send_run_step(run_id=run.pk, now=start + timedelta(hours=9), after_commit=False)
    run_walked(run, now=start + timedelta(hours=15))

    # then Paris went first, the run then waited for 10:00 UTC, and everyone was decided by 15:00 UTC
    assert first.walked == 1
    assert waiting.next_due == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    decided = dict(Intervention.objects.filter(campaign=campaign).values_list("user_id", "trigger_event_id"))
    assert set(decided) == {paris, new_york, unknown}
    run.refresh_from_db()
    assert run.state == "finished"


def test_it_starts_one_run_per_cron_tick():
    # given a campaign recurring every day at 09:00 UTC, with two gold shoppers
    campaign = scheduled_campaign(cron="0 9 * * *", send_at=None)
    shoppers(2)
    monday, tuesday = datetime(2026, 6, 1, 9, 0, 5, tzinfo=UTC), datetime(2026, 6, 2, 9, 0, 7, tzinfo=UTC)

    # when beat's task runs on two days (twice on the first: a redelivery)
    first = run_walked(run_started(campaign, now=monday), now=monday)
    again = runs.send_run_create(campaign_id=campaign.pk, now=monday + timedelta(seconds=30))
    second = run_walked(run_started(campaign, now=tuesday), now=tuesday)

    # then there is one run per day, keyed by its tick, each deciding both shoppers once
    assert again is not None
    assert again.pk == first.pk
    assert (first.tick, second.tick) == (monday.replace(second=0), tuesday.replace(second=0))
    assert (first.decided, second.decided) == (2, 2)
    assert Intervention.objects.filter(campaign=campaign).count() == 4


# A template that needs about 20 ms of CPU per render: out of a 5 ms render budget.
_CPU_SLOW = (
    "{% for a in [0] * 40 %}{% for b in [0] * 40 %}"
    "{% if ([5] * 100)|join|length > 1 %}{% endif %}{% endfor %}{% endfor %}{{ profile.user_id }}"
)


def _slow_render_campaign(settings: Any) -> Campaign:
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 5
    settings.TEMPLATE_SLOW_COOLOFF_SECONDS = 0
    settings.SEND_RUN_RENDER_ATTEMPTS = 2
    campaign = scheduled_campaign()
    TemplateLocalization.objects.filter(
        template_id__in=campaign.variants.values_list("email_template_id", flat=True)
    ).update(body_text=_CPU_SLOW)
    return campaign


def test_it_retries_later_a_member_whose_render_ran_out_of_time_and_sends_it_once(settings):
    # given a run of 3 whose template runs out of its render budget
    campaign = _slow_render_campaign(settings)
    members = shoppers(3)
    now = timezone.now()
    run = run_walked(run_started(campaign, now=now), now=now)

    # then nobody was decided or suppressed: each member waits, planned, for another attempt after the
    # template's cool-off, and the run is not finished
    assert (run.state, run.decided, run.suppressed) == ("running", 0, {})
    assert not Intervention.objects.filter(campaign=campaign).exists()
    waiting = SendRunMember.objects.filter(run=run)
    assert set(waiting.values_list("state", "reason", "attempts")) == {("planned", "render_timeout", 1)}
    assert runs.send_run_books(run=run).balanced
    early = runs.send_run_step(run_id=run.pk, now=now, after_commit=False)
    assert (early.walked, early.next_due) == (0, now + timedelta(seconds=1))

    # when the budget allows it by the time they are due again (the machine, or the limit, changed)
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 5000
    run = run_walked(run, now=now + timedelta(seconds=2))

    # then each member is decided once, sent the message, and the run finishes with balanced books
    decided = Intervention.objects.filter(campaign=campaign)
    assert sorted(decided.values_list("user_id", flat=True)) == sorted(members)
    assert set(decided.values_list("status", flat=True)) == {"pending"}
    assert (run.state, run.decided, run.queued) == ("finished", 3, 3)
    assert set(SendRunMember.objects.filter(run=run).values_list("state", flat=True)) == {"decided"}
    assert runs.send_run_books(run=run).balanced


def test_it_suppresses_a_member_whose_render_ran_out_of_time_on_every_attempt(settings):
    # given a run of 2 whose template always runs out of its render budget, 2 attempts allowed
    campaign = _slow_render_campaign(settings)
    shoppers(2)
    now = timezone.now()
    run = run_walked(run_started(campaign, now=now), now=now)

    # when it is walked again once the members are due again
    run = run_walked(run, now=now + timedelta(seconds=2))

    # then the last attempt suppressed each member, saying the render ran out of time
    suppressed = Intervention.objects.filter(campaign=campaign)
    assert set(suppressed.values_list("status", "suppression_reason")) == {("suppressed", "render_timeout")}
    assert suppressed.count() == 2
    assert (run.state, run.decided, run.queued, run.suppressed) == ("finished", 2, 0, {"render_timeout": 2})
    assert set(SendRunMember.objects.filter(run=run).values_list("attempts", flat=True)) == {1}
    assert runs.send_run_books(run=run).balanced


@pytest.mark.django_db(transaction=True)
def test_its_chunks_are_walked_side_by_side_and_decide_every_member_once(settings: Any) -> None:
    # given a run of 60 split into 3 chunks
    settings.SEND_RUN_WALKERS = 3
    campaign = scheduled_campaign()
    members = shoppers(60)
    run = run_started(campaign)
    assert sorted(SendRunChunk.objects.filter(run=run).values_list("index", "of")) == [(0, 3), (1, 3), (2, 3)]

    # when three threads walk them at once, each its own chunk by batches of 4, and a fourth walks
    # every chunk (as reconcile beside the chains would)
    def walk(chunk: int | None) -> None:
        try:
            while runs.send_run_step(run_id=run.pk, chunk=chunk, batch_size=4, after_commit=False).more:
                pass
        finally:
            connection.close()

    threads = [threading.Thread(target=walk, args=(chunk,)) for chunk in (0, 1, 2, None)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # then every member was decided once, the chunks are done and the run finished with balanced books
    run.refresh_from_db()
    decided = Intervention.objects.filter(campaign=campaign)
    assert sorted(decided.values_list("user_id", flat=True)) == sorted(members)
    assert (run.state, run.audience_size, run.decided, run.queued) == ("finished", 60, 60, 60)
    assert set(SendRunChunk.objects.filter(run=run).values_list("done", flat=True)) == {True}
    assert runs.send_run_books(run=run).balanced


def test_a_pause_stops_every_chunk_and_reconcile_restarts_a_chunk_whose_chain_stopped(settings: Any) -> None:
    # given a run of 6 in 2 chunks, one batch of 2 walked in chunk 0
    settings.SEND_RUN_WALKERS = 2
    campaign = scheduled_campaign()
    shoppers(6)
    run = run_started(campaign)
    runs.send_run_step(run_id=run.pk, chunk=0, batch_size=2, after_commit=False)

    # when it is paused, then both chunks are stepped
    runs.send_run_move(run_id=run.pk, move="pause")
    paused = [runs.send_run_step(run_id=run.pk, chunk=c, batch_size=2, after_commit=False) for c in (0, 1)]

    # then neither walked anyone
    assert [(p.state, p.walked) for p in paused] == [("paused", 0), ("paused", 0)]

    # and once resumed, reconcile finds both chunks' chains stopped (their rows have not moved since)
    runs.send_run_move(run_id=run.pk, move="resume")
    later = timezone.now() + timedelta(seconds=settings.SEND_RUN_STALLED_AFTER_SECONDS + 1)
    assert sorted(runs.send_runs_reconcile(now=later).stepped) == [(run.pk, 0), (run.pk, 1)]
    run = run_walked(run)
    assert (run.state, run.decided) == ("finished", 6)
    assert runs.send_runs_reconcile(now=later).stepped == []
