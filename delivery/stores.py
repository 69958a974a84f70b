"""The Redis clients the WebSocket gateway uses for tickets, presence and per-process statistics.

One synchronous client per process (thread-safe connection pool), and one asyncio client per event loop:
an asyncio connection belongs to the loop that opened it, and tests (and ``async_to_sync``) run several
loops in one process.
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_sync_client: redis.Redis | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def redis_sync() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return _sync_client


def redis_async() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # A blocking pool: thousands of sockets connecting at once wait briefly for one of a bounded set
        # of Redis connections instead of failing with "Too many connections".
        pool: aioredis.BlockingConnectionPool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, decode_responses=True, max_connections=64, timeout=10
        )
        client = aioredis.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client
