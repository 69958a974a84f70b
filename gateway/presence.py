"""Who is on the site right now, across every daphne process, kept in Redis with expiry.

Each user has a sorted set ``ie:presence:user:<user_id>`` whose members are the channel names of the
user's open sockets, scored by when that socket's presence lapses. A socket refreshes its score on
connect and on every ``ping``; a clean disconnect removes it; a crashed process's sockets simply lapse
after ``WS_PRESENCE_TTL_SECONDS``, so nobody stays "online" forever. A second sorted set
``ie:presence:users`` (user id → latest lapse time) answers "how many users are online".

Channel selection (delivery/services.py) asks for a whole batch in the same Redis round trip as its caps.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings

from core.redis import redis_sync
from gateway.stores import apipelined

USERS_KEY = "ie:presence:users"


def _user_key(user_id: str) -> str:
    return f"ie:presence:user:{user_id}"


def online_user_ids(user_ids: Iterable[str]) -> set[str]:
    """The subset of ``user_ids`` with at least one live socket on any process (one Redis round trip)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return set()
    pipe = redis_sync().pipeline(transaction=False)
    for key, low in live_socket_counts(ids):
        pipe.zcount(key, low, "+inf")
    return online_from_counts(ids, pipe.execute())


def live_socket_counts(user_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Per user, the sorted set and lower bound whose ``ZCOUNT key low +inf`` counts the live sockets:
    for callers that fold the question into a round trip of their own (the decision path's caps read)."""
    low = f"({time.time()}"
    return [(_user_key(user_id), low) for user_id in user_ids]


def online_from_counts(user_ids: Sequence[str], counts: Sequence[Any]) -> set[str]:
    return {user_id for user_id, count in zip(user_ids, counts, strict=True) if count}


def is_online(user_id: str) -> bool:
    return user_id in online_user_ids([user_id])


def users_online_count() -> int:
    return int(redis_sync().zcount(USERS_KEY, f"({time.time()}", "+inf"))


async def apresence_refresh(*, user_id: str, channel_name: str) -> None:
    """Mark one socket as live for another TTL (on connect and on each ping). Sent in one pipeline
    with the other sockets' refreshes of the same moment (gateway.stores.apipelined)."""
    ttl = settings.WS_PRESENCE_TTL_SECONDS
    now = time.time()
    lapses_at = now + ttl
    key = _user_key(user_id)

    def build(pipe: Any) -> None:
        pipe.zadd(key, {channel_name: lapses_at})
        pipe.expire(key, ttl)
        pipe.zadd(USERS_KEY, {user_id: lapses_at}, gt=True)
        # Lapsed members of the global set are trimmed here so it never grows without bound.
        pipe.zremrangebyscore(USERS_KEY, "-inf", now)

    _raise_first_error(await apipelined(build))


# Forget one socket and, when the user has no other live one, the user: atomic, so a socket of the
# same user connecting meanwhile cannot be counted out.
_REMOVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[2], '+inf') == 0 then
    redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1
"""


async def apresence_remove(*, user_id: str, channel_name: str) -> None:
    """Forget one socket; the user leaves the online set when it was their last live one. One
    script call, pipelined with the other sockets' removals of the same moment: a mass disconnect of
    10,000 sockets is a few round trips."""
    key, now = _user_key(user_id), repr(time.time())

    def build(pipe: Any) -> None:
        pipe.eval(_REMOVE, 2, key, USERS_KEY, channel_name, now, user_id)

    _raise_first_error(await apipelined(build))


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
