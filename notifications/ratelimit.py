"""Per-provider send rate limits: one token bucket per provider in Redis, shared by every worker.

The bucket refills continuously at ``rate`` tokens per second up to ``rate`` (one second of burst).
``ratelimit_acquire`` answers how long to wait before a token is available (0 when one was taken), so
the caller can sleep briefly or hand the delivery back to the queue for later.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from django.conf import settings

from core.redis import redis_sync

_BUCKET_SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local burst = math.max(rate, 1)
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('EXPIRE', key, 60)
return tostring(wait)
"""


@lru_cache(maxsize=4)
def _script(url: str) -> Any:
    return redis_sync().register_script(_BUCKET_SCRIPT)


def ratelimit_acquire(*, provider: str) -> float:
    """Take one token for ``provider``; 0.0 when taken, else the seconds until one will be free."""
    rate = settings.NOTIFICATION_RATE_LIMITS.get(provider)
    if not rate:
        return 0.0
    wait = _script(settings.REDIS_URL)(keys=[f"ie:ratelimit:{provider}"], args=[rate, time.time()])
    return float(wait)
