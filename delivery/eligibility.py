"""May this shopper receive this campaign now? Consent, frequency caps, cooldown, daily budget, quiet hours.

Counters live in Redis so every consumer process sees the same ones:

* ``ie:fc:<campaign>:<user>``  a sorted set of sends scored by time — the sliding frequency-cap window;
* ``ie:cd:<campaign>:<user>``  a key that exists while the campaign cools down for this shopper;
* ``ie:budget:<user>:<day>``   messages sent to the shopper that day (their own calendar day), across
  every campaign and channel, against ``SHOPPER_DAILY_MESSAGE_BUDGET``.

A batch reads every counter it needs in one Lua call (:meth:`CapLedger.load`), decides in memory
(counting its own decisions as it goes, so two events of one shopper in one batch cannot both slip under a
cap), and writes the new sends after the database commit (:func:`record_sends`) — in the consumer, in
the same call as the next batch's read, which writes them before it reads (one round trip less per batch;
a batch that reads nothing, and the idle consumer, write them at once). Recording after commit means a
rolled-back or replayed batch never counts twice; a crash between the commit and the write under-counts by
at most one batch — the safer side for a shopper is not the point here, not double-charging a replay is.
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
    at: float  # when it was decided (a timestamp)


@dataclass
class CapLedger:
    now: datetime
    campaign_sends: dict[tuple[int, str], int] = field(default_factory=dict)
    cooling: set[tuple[int, str]] = field(default_factory=set)
    budget_used: dict[str, int] = field(default_factory=dict)
    pending: list[Send] = field(default_factory=list)
    _batch_sends: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    _batch_budget: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def load(
        self,
        *,
        pairs: Iterable[tuple[Campaign, Profile]],
        redis: redis_client.Redis,
        zcounts: Sequence[tuple[str, str]] = (),
        record: Sequence[Send] = (),
    ) -> list[int]:
        """Read, in one round trip, the counters of every (campaign, shopper) pair the batch may decide,
        and answer ``zcounts`` — (sorted set, lower bound) pairs of the caller's, counted up to +inf in
        the same call (the shoppers' live sockets); returns those counts. ``record``: sends of earlier,
        committed batches not written yet, written first in the same call (see :func:`record_sends`).

        One Lua call rather than a pipeline of one command per counter: redis-py packs and parses each
        pipelined command in Python, which cost more than the decision itself for a batch of hundreds."""
        fc: list[tuple[int, str]] = []
        fc_keys: list[str] = [key for key, _ in zcounts]
        fc_min: list[str] = [low for _, low in zcounts]
        cd: list[tuple[int, str]] = []
        cd_keys: list[str] = []
        users: dict[str, str] = {}
        now_ts = self.now.timestamp()
        unique = {(campaign.pk, profile.user_id): (campaign, profile) for campaign, profile in pairs}
        for key, (campaign, profile) in unique.items():
            if campaign.frequency_cap_count:
                fc.append(key)
                fc_keys.append(_fc_key(*key))
                fc_min.append(f"({now_ts - campaign.frequency_cap_window_seconds}")
            if campaign.cooldown_seconds:
                cd.append(key)
                cd_keys.append(_cd_key(*key))
            if profile.user_id not in users:
                users[profile.user_id] = shopper_day(profile=profile, at=self.now)
        budget_keys = [_budget_key(user_id, day) for user_id, day in users.items()]
        keys = [*fc_keys, *cd_keys, *budget_keys]
        args: list[Any] = [len(fc_keys), len(cd_keys), *fc_min]
        if record:
            record_keys, record_args = _record_call(record)
            values = _script(redis, "record_read")(
                keys=[*record_keys, *keys], args=[len(record_keys), len(record_args), *record_args, *args]
            )
        elif keys:
            values = _script(redis, "read")(keys=keys, args=args)
        else:
            return []
        extra = len(zcounts)
        for key, value in zip(fc, values[extra : extra + len(fc)], strict=True):
            self.campaign_sends[key] = int(value or 0)
        for key, value in zip(cd, values[len(fc_keys) : len(fc_keys) + len(cd)], strict=True):
            if value:
                self.cooling.add(key)
        for user_id, value in zip(users, values[len(fc_keys) + len(cd) :], strict=True):
            self.budget_used[user_id] = int(value or 0)
        return [int(value or 0) for value in values[:extra]]

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
        """Count a decided send in this batch; written to Redis by :func:`record_sends` after commit."""
        self._batch_sends[(campaign.pk, profile.user_id)] += 1
        self._batch_budget[profile.user_id] += 1
        self.pending.append(
            Send(
                user_id=profile.user_id,
                campaign=campaign,
                member=member,
                day=shopper_day(profile=profile, at=self.now),
                at=self.now.timestamp(),
            )
        )


def record_sends(*, redis: redis_client.Redis, sends: Sequence[Send]) -> None:
    """Write sends (a ledger's ``pending``, of one batch or several) in one Lua call: per send, add it to
    the campaign's frequency-cap window and trim the window, start the cooldown, count it in the
    shopper's day."""
    if sends:
        keys, args = _record_call(sends)
        _script(redis, "record")(keys=keys, args=args)


def _record_call(sends: Sequence[Send]) -> tuple[list[str], list[Any]]:
    keys: list[str] = []
    args: list[Any] = [max(send.at for send in sends)]
    for send in sends:
        campaign = send.campaign
        keys.append(_fc_key(campaign.pk, send.user_id) if campaign.frequency_cap_count else "")
        keys.append(_cd_key(campaign.pk, send.user_id) if campaign.cooldown_seconds else "")
        keys.append(_budget_key(send.user_id, send.day))
        args.extend([send.member, campaign.frequency_cap_window_seconds, campaign.cooldown_seconds])
    return keys, args


# Key names travel in KEYS (as Redis asks of scripts); an empty name means "this campaign has no such
# counter". Both scripts do exactly what the former per-command pipelines did.
_READ = """
local function read(keys, argv)
  local nfc, ncd = tonumber(argv[1]), tonumber(argv[2])
  local out = {}
  for i = 1, #keys do
    if i <= nfc then
      out[i] = redis.call('ZCOUNT', keys[i], argv[2 + i], '+inf')
    elseif i <= nfc + ncd then
      out[i] = redis.call('EXISTS', keys[i])
    else
      out[i] = tonumber(redis.call('GET', keys[i]) or '0')
    end
  end
  return out
end
"""

_RECORD = """
local function record(keys, argv)
  local now = tonumber(argv[1])
  for s = 0, (#keys / 3) - 1 do
    local fc, cd, budget = keys[3 * s + 1], keys[3 * s + 2], keys[3 * s + 3]
    local member, window, cooldown = argv[3 * s + 2], tonumber(argv[3 * s + 3]), tonumber(argv[3 * s + 4])
    if fc ~= '' then
      redis.call('ZADD', fc, argv[1], member)
      redis.call('ZREMRANGEBYSCORE', fc, '-inf', now - window)
      redis.call('EXPIRE', fc, math.max(1, window))
    end
    if cd ~= '' then
      redis.call('SET', cd, '1', 'EX', cooldown)
    end
    redis.call('INCR', budget)
    redis.call('EXPIRE', budget, 2 * 86400)
  end
end
"""

# record_read: KEYS = the record's keys, then the read's; ARGV = [number of record keys, number of record
# arguments, the record's arguments…, the read's arguments…].
_SOURCES = {
    "read": _READ + "return read(KEYS, ARGV)",
    "record": _RECORD + "record(KEYS, ARGV)\nreturn 1",
    "record_read": _RECORD
    + _READ
    + """
local function slice(t, first, last)
  local out = {}
  for i = first, last do out[#out + 1] = t[i] end
  return out
end
local nkeys, nargs = tonumber(ARGV[1]), tonumber(ARGV[2])
record(slice(KEYS, 1, nkeys), slice(ARGV, 3, 2 + nargs))
return read(slice(KEYS, nkeys + 1, #KEYS), slice(ARGV, 3 + nargs, #ARGV))
""",
}

_SCRIPTS: dict[tuple[int, str], Any] = {}


def _script(redis: redis_client.Redis, name: str) -> Any:
    """The registered script (EVALSHA, loading it again after a Redis restart), one per client."""
    key = (id(redis), name)
    script = _SCRIPTS.get(key)
    if script is None:
        script = _SCRIPTS[key] = redis.register_script(_SOURCES[name])
    return script


def in_quiet_hours(*, profile: Profile, channel: str, at: datetime) -> bool:
    """Quiet hours hold back messages that interrupt (email, SMS, push); an on-site message is shown
    only to a shopper who is on the site at that moment, so it is never held back."""
    if channel == "onsite":
        return False
    return quiet_hours_end(profile=profile, at=at) is not None


def consented_channels(*, profile: Profile, channels: Iterable[str]) -> list[str]:
    return [channel for channel in channels if profile.has_consent(channel)]
