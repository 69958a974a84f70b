"""A fixed-window rate limit per API key, counted in Redis (the default cache).

DRF's SimpleRateThrottle keeps a list of every request time per client in the cache, read and rewritten
on each request: at thousands of requests a minute that is a large, racy value. One atomic INCR per
request in a window keyed by the current minute is enough for a service-to-service budget.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from api.models import ApiKey

if TYPE_CHECKING:
    # rest_framework.views imports the permission and throttle classes named in settings.
    from rest_framework.views import APIView

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"6000/min"`` → (6000, 60)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[:1]]


class ApiKeyRateThrottle(BaseThrottle):
    """``settings.API_THROTTLE_RATE`` requests per window for each key; read per request so tests can
    override it."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        limit, period = parse_rate(settings.API_THROTTLE_RATE)
        now = time.time()
        window = int(now // period)
        # The prefix is random per key, so counters never collide across databases sharing one Redis.
        cache_key = f"api:throttle:{api_key.prefix}:{period}:{window}"
        cache.add(cache_key, 0, timeout=period + 1)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=period + 1)
            count = 1
        if count <= limit:
            return True
        self._wait = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return self._wait
