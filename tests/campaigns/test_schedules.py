"""Schedules of scheduled campaigns: refused with the field and the reason when they cannot run, kept as
django-celery-beat entries that follow the campaign's status, and cron ticks that start one run each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from campaigns import services
from campaigns.models import Campaign
from campaigns.schedules import RUN_START_TASK, cron_last_tick, cron_next_ticks, cron_parse, schedule_preview
from core.errors import ApplicationError
from tests import fixtures as f

pytestmark = pytest.mark.django_db


def scheduled(**data: Any) -> Campaign:
    return f.campaign(
        channels=("email",),
        kind="scheduled",
        trigger="",
        conditions="",
        segment='attributes.tier == "gold"',
        **data,
    )


def test_it_refuses_a_past_one_off_time_with_the_field_and_the_reason():
    # given a draft scheduled campaign whose one-off time has passed
    campaign = scheduled(send_at=timezone.now() - timedelta(hours=1))

    # when it is activated, then it is refused, naming send_at
    with pytest.raises(ApplicationError) as refused:
        services.campaign_activate(campaign=campaign, actor_label="test")
    assert "has passed" in refused.value.details["send_at"][0]
    assert not PeriodicTask.objects.filter(enabled=True, task=RUN_START_TASK).exists()


def test_it_refuses_a_bad_cron_expression_on_save():
    # when a campaign is created with a cron of four fields, or a minute of 61, then each is refused
    for cron, reason in (("0 9 * *", "five fields"), ("61 9 * * *", "61")):
        with pytest.raises(ApplicationError) as refused:
            scheduled(cron=cron)
        assert reason in refused.value.details["cron"][0]


def test_it_refuses_a_scheduled_campaign_without_segment_or_template():
    # given a scheduled campaign with no segment and a variant without an email template
    campaign = f.campaign(
        channels=("email",),
        kind="scheduled",
        trigger="",
        conditions="",
        cron="0 9 * * 1",
        variants=[{"name": "A", "weight": 1, "onsite_template": f.template("onsite")}],
    )

    # when it is activated, then both are refused with their fields
    with pytest.raises(ApplicationError) as refused:
        services.campaign_activate(campaign=campaign, actor_label="test")
    details = refused.value.details
    assert "segment" in details["segment"][0]
    assert "no template for email" in details["variants"][0]


def test_it_refuses_an_unknown_schedule_time_zone():
    with pytest.raises(ApplicationError) as refused:
        scheduled(cron="0 9 * * 1", schedule_timezone="Europe/Atlantis")
    assert "not a known time zone" in refused.value.details["schedule_timezone"][0]


def test_it_keeps_the_beat_entry_in_step_with_the_campaign():
    # given a recurring campaign, Mondays 09:00 in Paris
    campaign = scheduled(cron="0 9 * * 1", schedule_timezone="Europe/Paris")

    # when it is activated, paused, activated again
    services.campaign_activate(campaign=campaign, actor_label="test")
    active = PeriodicTask.objects.get(name=f"campaign-{campaign.pk}-send-run")
    services.campaign_pause(campaign=campaign, actor_label="test")
    paused = PeriodicTask.objects.get(pk=active.pk)

    # then beat holds a crontab entry for it, enabled only while active
    assert active.enabled
    assert not paused.enabled
    assert active.task == RUN_START_TASK
    assert json.loads(active.kwargs) == {"campaign_id": campaign.pk}
    assert active.crontab is not None
    assert (active.crontab.minute, active.crontab.hour, active.crontab.day_of_week) == ("0", "9", "1")
    assert str(active.crontab.timezone) == "Europe/Paris"
    assert active.clocked is None


def test_it_schedules_a_one_off_on_a_clocked_entry():
    # given a one-off campaign an hour from now
    send_at = timezone.now() + timedelta(hours=1)
    campaign = scheduled(send_at=send_at)

    # when it is activated
    services.campaign_activate(campaign=campaign, actor_label="test")

    # then beat holds a one-off clocked entry at that time
    task = PeriodicTask.objects.get(name=f"campaign-{campaign.pk}-send-run")
    assert task.enabled
    assert task.one_off
    assert task.clocked is not None
    assert task.clocked.clocked_time == send_at


def test_it_finds_cron_ticks_in_the_schedule_zone_across_daylight_saving():
    # given "every day at 09:00" in New York, around America's spring change (2026-03-08)
    cron, zone = cron_parse("0 9 * * *"), ZoneInfo("America/New_York")

    # when the last tick before 15:30 UTC on the change day and the next three after are asked
    last = cron_last_tick(cron=cron, zone=zone, at=datetime(2026, 3, 8, 15, 30, tzinfo=UTC))
    following = cron_next_ticks(cron=cron, zone=zone, after=datetime(2026, 3, 7, 0, 0, tzinfo=UTC), count=3)

    # then 09:00 local is 13:00 UTC on and after the change, 14:00 UTC before it
    assert last == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)
    assert [t.astimezone(UTC) for t in following] == [
        datetime(2026, 3, 7, 14, 0, tzinfo=UTC),
        datetime(2026, 3, 8, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 13, 0, tzinfo=UTC),
    ]


def test_it_previews_the_next_runs_in_the_marketers_and_the_shoppers_zones_across_daylight_saving():
    # given "every day at 09:00" in Paris, previewed before America's spring change (2026-03-08), for
    # shoppers in New York and in a zone nobody knows
    campaign = Campaign(kind=Campaign.Kind.SCHEDULED, cron="0 9 * * *", schedule_timezone="Europe/Paris")

    # when the next five runs are previewed
    preview = schedule_preview(
        campaign=campaign,
        now=datetime(2026, 3, 6, 0, 0, tzinfo=UTC),
        shopper_zones=["America/New_York", "Mars/Olympus"],
    )

    # then each starts at 09:00 Paris time and reaches New York at 03:00, then 04:00 from the change on
    assert preview is not None
    assert (preview.zone, preview.shopper_zones, preview.problem) == (
        "Europe/Paris",
        ["America/New_York"],
        "",
    )
    assert [(start.day, start.hour) for start, _ in preview.runs] == [(d, 9) for d in range(6, 11)]
    assert [(reach.day, reach.hour) for _, (reach,) in preview.runs] == [
        (6, 3),
        (7, 3),
        (8, 4),
        (9, 4),
        (10, 4),
    ]


def test_it_previews_a_local_time_send_and_says_why_a_past_one_off_has_no_run():
    # given a one-off at 08:00 UTC sent at 10:00 on each shopper's clock, and one whose time has passed
    at = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    local = Campaign(
        kind=Campaign.Kind.SCHEDULED, send_at=at, schedule_timezone="UTC", send_local_time=time(10)
    )
    past = Campaign(kind=Campaign.Kind.SCHEDULED, send_at=at, schedule_timezone="UTC")

    # when both are previewed
    zones = ["Asia/Tokyo", "America/New_York"]
    ahead = schedule_preview(campaign=local, now=at - timedelta(days=1), shopper_zones=zones)
    gone = schedule_preview(campaign=past, now=at + timedelta(minutes=1), shopper_zones=zones)

    # then Tokyo (17:00 local at the start) gets it at 10:00 the next day, New York (04:00) the same day
    assert ahead is not None
    assert [(r.month, r.day, r.hour) for r in ahead.runs[0][1]] == [(6, 2, 10), (6, 1, 10)]
    assert gone is not None
    assert (gone.runs, gone.problem) == ([], "no run ahead: set a future one-off time or a cron")
