"""Counters of this daphne process's sockets, published to Redis so ``GET /ws/stats`` can sum them.

Each process keeps its numbers in memory (the consumer updates them without any I/O) and writes them
every few seconds to ``ie:ws:stats:<host>:<pid>`` with a short expiry: a crashed process drops out of
the total by itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.observability import get_logger
from core.redis import redis_async, redis_sync
from gateway.presence import users_online_count

logger = get_logger(__name__)

_KEY_PREFIX = "ie:ws:stats:"
PUBLISH_EVERY_SECONDS = 5.0
_EXPIRY_SECONDS = 20


@dataclass
class ProcessStats:
    connections: int = 0
    messages_in: int = 0
    messages_out: int = 0
    users: Counter[str] = field(default_factory=Counter)
    rooms: Counter[str] = field(default_factory=Counter)
    started_at: float = field(default_factory=time.time)

    def snapshot(self) -> dict[str, Any]:
        return {
            "process": process_id(),
            "connections": self.connections,
            "users": len(self.users),
            "rooms": sorted(self.rooms),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "updated_at": time.time(),
        }


STATS = ProcessStats()
_publisher: asyncio.Task[None] | None = None


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def connection_opened(*, user_id: str) -> None:
    STATS.connections += 1
    STATS.users[user_id] += 1
    _ensure_publisher()


def connection_closed(*, user_id: str, rooms: set[str]) -> None:
    STATS.connections -= 1
    STATS.users[user_id] -= 1
    if STATS.users[user_id] <= 0:
        del STATS.users[user_id]
    for room in rooms:
        room_left(room=room)


def room_joined(*, room: str) -> None:
    STATS.rooms[room] += 1


def room_left(*, room: str) -> None:
    STATS.rooms[room] -= 1
    if STATS.rooms[room] <= 0:
        del STATS.rooms[room]


def _ensure_publisher() -> None:
    global _publisher
    loop = asyncio.get_running_loop()
    if _publisher is None or _publisher.done() or _publisher.get_loop() is not loop:
        _publisher = loop.create_task(_publish_forever())


async def apublish() -> None:
    await redis_async().set(_KEY_PREFIX + process_id(), json.dumps(STATS.snapshot()), ex=_EXPIRY_SECONDS)


async def _publish_forever() -> None:
    while True:
        try:
            await apublish()
        except Exception as exc:  # Redis down: the stats go stale, the sockets carry on.
            logger.warning("ws_stats_publish_failed", error=str(exc))
        await asyncio.sleep(PUBLISH_EVERY_SECONDS)


def ws_stats() -> dict[str, Any]:
    """Per process and total. The calling process's own numbers are always current."""
    client = redis_sync()
    client.set(_KEY_PREFIX + process_id(), json.dumps(STATS.snapshot()), ex=_EXPIRY_SECONDS)
    keys = list(client.scan_iter(match=_KEY_PREFIX + "*", count=500))
    processes = [json.loads(raw) for raw in client.mget(keys) if raw] if keys else []
    processes.sort(key=lambda p: p["process"])
    rooms: set[str] = set()
    for process in processes:
        rooms.update(process["rooms"])
        process["rooms"] = len(process["rooms"])
    return {
        "total": {
            "processes": len(processes),
            "connections": sum(p["connections"] for p in processes),
            "users_online": users_online_count(),
            "rooms": len(rooms),
            "messages_in": sum(p["messages_in"] for p in processes),
            "messages_out": sum(p["messages_out"] for p in processes),
        },
        "processes": processes,
    }
