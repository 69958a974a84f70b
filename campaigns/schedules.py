"""When a scheduled campaign runs: its cron expression, its ticks, and what makes a schedule unrunnable.

A scheduled campaign is a one-off (``send_at``) or recurring (``cron``, five fields read in
``schedule_timezone``); django-celery-beat holds the schedule (``campaigns.services`` keeps its rows in
step with the campaign's status). Parsing goes through Celery's own ``crontab``, so what is accepted here
is exactly what beat will run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab

from campaigns.models import Campaign

# The task beat sends for every tick; named, not imported: it lives in the decision app above this one.
RUN_START_TASK = "delivery.tasks.send_run_start_task"
# A tick older than this is not looked for: beat fires on the minute, a worker takes it within seconds.
_TICK_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class Cron:
    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str

    def schedule(self) -> crontab:
        return crontab(
            minute=self.minute,
            hour=self.hour,
            day_of_month=self.day_of_month,
            month_of_year=self.month_of_year,
            day_of_week=self.day_of_week,
        )


class CronError(ValueError):
    pass


def cron_parse(text: str) -> Cron:
    """Five fields, "minute hour day-of-month month day-of-week"; raises CronError with the reason."""
    fields = text.split()
    if len(fields) != 5:
        raise CronError(
            f"five fields (minute hour day-of-month month day-of-week) are needed, {len(fields)} given"
        )
    cron = Cron(*fields)
    try:
        cron.schedule()
    except ValueError as exc:
        raise CronError(str(exc)) from None
    return cron


def zone_get(name: str) -> ZoneInfo | None:
    if not name or name not in _zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES  # the zone list is read from disk once per process
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def _matches(schedule: crontab, moment: datetime) -> bool:
    # The parsed sets are public attributes of Celery's crontab that its type stubs do not declare.
    # Celery numbers weekdays from Sunday = 0; Python's isoweekday from Monday = 1.
    fields: dict[str, set[int]] = {
        name: getattr(schedule, name)
        for name in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    }
    return (
        moment.minute in fields["minute"]
        and moment.hour in fields["hour"]
        and moment.day in fields["day_of_month"]
        and moment.month in fields["month_of_year"]
        and (moment.isoweekday() % 7) in fields["day_of_week"]
    )


def cron_last_tick(*, cron: Cron, zone: ZoneInfo, at: datetime) -> datetime | None:
    """The latest tick at or before ``at`` (within a day), as an aware UTC time; None if there is none.

    The run a tick starts is keyed by this time, so a tick delivered twice (beat restarted, a task
    redelivered) starts one run."""
    schedule = cron.schedule()
    moment = at.astimezone(zone).replace(second=0, microsecond=0)
    floor = moment - _TICK_LOOKBACK
    while moment > floor:
        if _matches(schedule, moment):
            return moment.astimezone(ZoneInfo("UTC"))
        moment = (moment.astimezone(ZoneInfo("UTC")) - timedelta(minutes=1)).astimezone(zone)
    return None


def cron_next_ticks(*, cron: Cron, zone: ZoneInfo, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` ticks after ``after`` (within a year), aware, in ``zone``."""
    schedule = cron.schedule()
    ticks: list[datetime] = []
    moment = after.astimezone(ZoneInfo("UTC")).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = moment + timedelta(days=366)
    while moment < end and len(ticks) < count:
        local = moment.astimezone(zone)
        if _matches(schedule, local):
            ticks.append(local)
        moment += timedelta(minutes=1)
    return ticks


def campaign_schedule_errors(*, campaign: Campaign, now: datetime) -> dict[str, list[str]]:
    """What stops a scheduled campaign's schedule from running, by field (empty when it can run)."""
    errors: dict[str, list[str]] = {}
    if campaign.kind != Campaign.Kind.SCHEDULED:
        return errors
    zone = zone_get(campaign.schedule_timezone)
    if zone is None:
        errors["schedule_timezone"] = [f"{campaign.schedule_timezone!r} is not a known time zone"]
    if campaign.cron:
        try:
            cron_parse(campaign.cron)
        except CronError as exc:
            errors["cron"] = [f"not a cron expression: {exc}"]
        if campaign.send_at is not None:
            errors["send_at"] = ["a recurring campaign (cron) has no one-off time; clear one of them"]
    elif campaign.send_at is None:
        errors["send_at"] = ["set a one-off time, or a cron expression for a recurring campaign"]
    elif campaign.send_at <= now:
        errors["send_at"] = [f"{campaign.send_at.isoformat()} has passed; a one-off time must be ahead"]
    return errors


def campaign_schedule_shape_errors(*, campaign: Campaign) -> dict[str, list[str]]:
    """The part of the checks that holds in every status (a draft may have a past time, not a bad cron)."""
    errors: dict[str, list[str]] = {}
    if campaign.cron:
        try:
            cron_parse(campaign.cron)
        except CronError as exc:
            errors["cron"] = [f"not a cron expression: {exc}"]
    if zone_get(campaign.schedule_timezone) is None:
        errors["schedule_timezone"] = [f"{campaign.schedule_timezone!r} is not a known time zone"]
    return errors


@dataclass(frozen=True)
class SchedulePreview:
    """The next runs of a scheduled campaign: per run, when it starts in the marketer's zone and when it
    reaches a shopper in each of ``shopper_zones`` (with ``send_local_time``, that shopper's own time)."""

    zone: str
    shopper_zones: list[str]
    # One row per run: (start in ``zone``, [the send time in each shopper zone]).
    runs: list[tuple[datetime, list[datetime]]]
    problem: str = ""


def schedule_preview(
    *, campaign: Campaign, now: datetime, shopper_zones: list[str], count: int = 5
) -> SchedulePreview | None:
    """None for a campaign that is not scheduled; ``problem`` says why there is no run to show."""
    if campaign.kind != Campaign.Kind.SCHEDULED:
        return None
    zone = zone_get(campaign.schedule_timezone)
    known = [name for name in shopper_zones if zone_get(name) is not None]
    if zone is None:
        return SchedulePreview(campaign.schedule_timezone, known, [], "the schedule's time zone is not known")
    starts: list[datetime]
    if campaign.cron:
        try:
            starts = cron_next_ticks(cron=cron_parse(campaign.cron), zone=zone, after=now, count=count)
        except CronError as exc:
            return SchedulePreview(zone.key, known, [], f"not a cron expression: {exc}")
    elif campaign.send_at is not None and campaign.send_at > now:
        starts = [campaign.send_at.astimezone(zone)]
    else:
        return SchedulePreview(zone.key, known, [], "no run ahead: set a future one-off time or a cron")
    runs = [
        (start, [_reaches(campaign=campaign, start=start, zone=ZoneInfo(name)) for name in known])
        for start in starts
    ]
    return SchedulePreview(zone.key, known, runs)


def _reaches(*, campaign: Campaign, start: datetime, zone: ZoneInfo) -> datetime:
    """When a run starting at ``start`` reaches a shopper in ``zone``: at once, or with ``send_local_time``
    the first such time on their clock at or after the start (as the run's snapshot computes it)."""
    local = start.astimezone(zone)
    if campaign.send_local_time is None:
        return local
    due = datetime.combine(local.date(), campaign.send_local_time, tzinfo=zone)
    if due < start:
        due = datetime.combine(local.date() + timedelta(days=1), campaign.send_local_time, tzinfo=zone)
    return due
