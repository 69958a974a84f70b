"""May this shopper receive this campaign now? Consent, frequency caps, cooldown, daily budget, quiet hours.

Counters live in Redis so every consumer process sees the same ones:

* ``ie:fc:<campaign>:<user>``  a sorted set of sends scored by time — the sliding frequency-cap window;
* ``ie:cd:<campaign>:<user>``  a key that exists while the campaign cools down for this shopper;
* ``ie:budget:<user>:<day>``   messages sent to the shopper that day (their own calendar day), across
  every campaign and channel, against ``SHOPPER_DAILY_MESSAGE_BUDGET``.

A batch reads every counter it needs in one pipeline (:meth:`CapLedger.load`), decides in memory (counting
its own decisions as it goes, so two events of one shopper in one batch cannot both slip under a cap), and
writes the new sends in one pipeline after the database commit (:meth:`CapLedger.record`). Recording after
commit means a rolled-back or replayed batch never counts twice; a crash between the commit and the write
under-counts by at most one batch — the safer side for a shopper is not the point here, not double-charging
a replay is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis as redis_client
from django.conf import settings

from campaigns.models import Campaign
from notifications.channels import profile_zone, quiet_hours_end
from personalization.models import Profile


def _fc_key(campaign_id: int, user_id: str) -> str:
    return f"ie:fc:{campaign_id}:{user_id}"


def _cd_key(campaign_id: int, user_id: str) -> str:
    return f"ie:cd:{campaign_id}:{user_id}"


def _budget_key(user_id: str, day: str) -> str:
    return f"ie:budget:{user_id}:{day}"


def shopper_day(*, profile: Profile, at: datetime) -> str:
    return at.astimezone(profile_zone(profile=profile)).date().isoformat()


def daily_budget() -> int:
    return int(getattr(settings, "SHOPPER_DAILY_MESSAGE_BUDGET", 3))


@dataclass
class Send:
    """A decision that counts against caps: recorded in Redis after the commit."""

    user_id: str
    campaign: Campaign
    member: str  # the intervention id: a unique member of the frequency-cap set
    day: str


@dataclass
class CapLedger:
    now: datetime
    campaign_sends: dict[tuple[int, str], int] = field(default_factory=dict)
    cooling: set[tuple[int, str]] = field(default_factory=set)
    budget_used: dict[str, int] = field(default_factory=dict)
    pending: list[Send] = field(default_factory=list)
    _batch_sends: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    _batch_budget: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def load(self, *, pairs: Iterable[tuple[Campaign, Profile]], redis: redis_client.Redis) -> None:
        """Read, in one pipeline, the counters of every (campaign, shopper) pair the batch may decide."""
        pipe = redis.pipeline(transaction=False)
        reads: list[tuple[str, Any]] = []
        users: dict[str, str] = {}
        now_ts = self.now.timestamp()
        unique = {(campaign.pk, profile.user_id): (campaign, profile) for campaign, profile in pairs}
        for key, (campaign, profile) in unique.items():
            if campaign.frequency_cap_count:
                pipe.zcount(_fc_key(*key), f"({now_ts - campaign.frequency_cap_window_seconds}", "+inf")
                reads.append(("fc", key))
            if campaign.cooldown_seconds:
                pipe.exists(_cd_key(*key))
                reads.append(("cd", key))
            if profile.user_id not in users:
                users[profile.user_id] = shopper_day(profile=profile, at=self.now)
        for user_id, day in users.items():
            pipe.get(_budget_key(user_id, day))
            reads.append(("budget", user_id))
        if not reads:
            return
        for (kind, key), value in zip(reads, pipe.execute(), strict=True):
            if kind == "fc":
                self.campaign_sends[key] = int(value or 0)
            elif kind == "cd" and value:
                self.cooling.add(key)
            elif kind == "budget":
                self.budget_used[key] = int(value or 0)

    def refusal(self, *, campaign: Campaign, profile: Profile) -> str | None:
        """The suppression reason for sending ``campaign`` to ``profile`` now, or None if allowed."""
        key = (campaign.pk, profile.user_id)
        if campaign.frequency_cap_count:
            sent = self.campaign_sends.get(key, 0) + self._batch_sends[key]
            if sent >= campaign.frequency_cap_count:
                return "frequency_cap"
        if campaign.cooldown_seconds and (key in self.cooling or self._batch_sends[key]):
            return "cooldown"
        budget = daily_budget()
        if (
            budget
            and self.budget_used.get(profile.user_id, 0) + self._batch_budget[profile.user_id] >= budget
        ):
            return "daily_budget"
        return None

    def count(self, *, campaign: Campaign, profile: Profile, member: str) -> None:
        """Count a decided send in this batch; written to Redis by :meth:`record` after commit."""
        self._batch_sends[(campaign.pk, profile.user_id)] += 1
        self._batch_budget[profile.user_id] += 1
        self.pending.append(
            Send(
                user_id=profile.user_id,
                campaign=campaign,
                member=member,
                day=shopper_day(profile=profile, at=self.now),
            )
        )

    def forget(self, *, members: set[str]) -> None:
        """Drop counted sends whose intervention was not written after all (a concurrent duplicate)."""
        self.pending = [send for send in self.pending if send.member not in members]

    def record(self, *, redis: redis_client.Redis, sends: Sequence[Send] | None = None) -> None:
        sends = self.pending if sends is None else sends
        if not sends:
            return
        pipe = redis.pipeline(transaction=False)
        now_ts = self.now.timestamp()
        for send in sends:
            campaign = send.campaign
            if campaign.frequency_cap_count:
                key = _fc_key(campaign.pk, send.user_id)
                window = campaign.frequency_cap_window_seconds
                pipe.zadd(key, {send.member: now_ts})
                pipe.zremrangebyscore(key, "-inf", now_ts - window)
                pipe.expire(key, max(1, window))
            if campaign.cooldown_seconds:
                pipe.set(_cd_key(campaign.pk, send.user_id), "1", ex=campaign.cooldown_seconds)
            budget_key = _budget_key(send.user_id, send.day)
            pipe.incr(budget_key)
            pipe.expire(budget_key, 2 * 86400)
        pipe.execute()


def in_quiet_hours(*, profile: Profile, channel: str, at: datetime) -> bool:
    """Quiet hours hold back messages that interrupt (email, SMS, push); an on-site message is shown
    only to a shopper who is on the site at that moment, so it is never held back."""
    if channel == "onsite":
        return False
    return quiet_hours_end(profile=profile, at=at) is not None


def consented_channels(*, profile: Profile, channels: Iterable[str]) -> list[str]:
    return [channel for channel in channels if profile.has_consent(channel)]
