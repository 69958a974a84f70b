"""Who is on the site right now, across every daphne process, kept in Redis with expiry.

Each user has a sorted set ``ie:presence:user:<user_id>`` whose members are the channel names of the
user's open sockets, scored by when that socket's presence lapses. A socket refreshes its score on
connect and on every ``ping``; a clean disconnect removes it; a crashed process's sockets simply lapse
after ``WS_PRESENCE_TTL_SECONDS``, so nobody stays "online" forever. A second sorted set
``ie:presence:users`` (user id → latest lapse time) answers "how many users are online".

Channel selection (delivery/services.py) asks ``online_user_ids`` for a whole batch in one pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.conf import settings

from delivery.stores import redis_async, redis_sync

USERS_KEY = "ie:presence:users"


def _user_key(user_id: str) -> str:
    return f"ie:presence:user:{user_id}"


def online_user_ids(user_ids: Iterable[str]) -> set[str]:
    """The subset of ``user_ids`` with at least one live socket on any process (one Redis round trip)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return set()
    now = time.time()
    pipe = redis_sync().pipeline(transaction=False)
    for user_id in ids:
        pipe.zcount(_user_key(user_id), f"({now}", "+inf")
    counts = pipe.execute()
    return {user_id for user_id, count in zip(ids, counts, strict=True) if count}


def is_online(user_id: str) -> bool:
    return user_id in online_user_ids([user_id])


def users_online_count() -> int:
    return int(redis_sync().zcount(USERS_KEY, f"({time.time()}", "+inf"))


async def apresence_refresh(*, user_id: str, channel_name: str) -> None:
    """Mark one socket as live for another TTL (on connect and on each ping)."""
    ttl = settings.WS_PRESENCE_TTL_SECONDS
    lapses_at = time.time() + ttl
    key = _user_key(user_id)
    pipe = redis_async().pipeline(transaction=False)
    pipe.zadd(key, {channel_name: lapses_at})
    pipe.expire(key, ttl)
    pipe.zadd(USERS_KEY, {user_id: lapses_at}, gt=True)
    # Lapsed members of the global set are trimmed here so it never grows without bound.
    pipe.zremrangebyscore(USERS_KEY, "-inf", time.time())
    await pipe.execute()


async def apresence_remove(*, user_id: str, channel_name: str) -> None:
    """Forget one socket; the user leaves the online set when it was their last live one."""
    key = _user_key(user_id)
    client = redis_async()
    pipe = client.pipeline(transaction=False)
    pipe.zrem(key, channel_name)
    pipe.zcount(key, f"({time.time()}", "+inf")
    _, remaining = await pipe.execute()
    if not remaining:
        await client.zrem(USERS_KEY, user_id)
