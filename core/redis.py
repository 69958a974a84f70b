"""The one way to get a Redis client, for every app and process.

One synchronous client per process and URL (its connection pool is thread-safe), and one asyncio client per
event loop: an asyncio connection belongs to the loop that opened it, and tests (and ``async_to_sync``) run
several loops in one process. Replies are decoded to ``str``.
"""

from __future__ import annotations

import asyncio
import functools
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


@functools.cache
def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def redis_sync() -> redis.Redis:
    """The process's client for ``settings.REDIS_URL``."""
    return _sync_client(settings.REDIS_URL)


def redis_async() -> aioredis.Redis:
    """The running event loop's client for ``settings.REDIS_URL``."""
    loop = asyncio.get_running_loop()
    url = settings.REDIS_URL
    entry = _async_clients.get(loop)
    if entry is None or entry[0] != url:
        # A blocking pool: thousands of sockets connecting at once wait briefly for one of a bounded set
        # of Redis connections instead of failing with "Too many connections".
        pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=64, timeout=10
        )
        entry = (url, aioredis.Redis(connection_pool=pool))
        _async_clients[loop] = entry
    return entry[1]
