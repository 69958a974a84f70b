"""Redis for the WebSocket gateway: the clients (core.redis) and a pipeline shared by one loop iteration."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from core.redis import redis_async

Build = Callable[[Any], None]


async def apipelined(build: Build) -> list[Any]:
    """Run the commands ``build(pipe)`` adds, in one pipeline shared with every other caller of this
    event-loop iteration; returns this caller's replies (a failed command's reply is its exception).

    A mass (dis)connect of thousands of sockets then costs a few pipelines instead of a round trip or
    two per socket. A connection error fails every caller of the batch with that error."""
    loop = asyncio.get_running_loop()
    batch = _batches.get(loop)
    if batch is None:
        batch = _batches[loop] = _PipelineBatch()
    return await batch.add(build)


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PipelineBatch] = weakref.WeakKeyDictionary()
# Callers per pipeline; several pipelines of one batch run at once on the pool's connections.
_CALLERS_PER_PIPELINE = 500


class _PipelineBatch:
    # Holds no reference to its loop: it is the value of a weak-keyed mapping keyed by that loop.
    def __init__(self) -> None:
        self.items: list[tuple[Build, asyncio.Future[list[Any]]]] = []
        self.flushing: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def add(self, build: Build) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.items.append((build, future))
        if len(self.items) == 1:
            task = loop.create_task(self._flush())
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)
        return future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the rest of this loop iteration joins the batch
        items, self.items = self.items, []
        await asyncio.gather(
            *(
                _execute(items[start : start + _CALLERS_PER_PIPELINE])
                for start in range(0, len(items), _CALLERS_PER_PIPELINE)
            )
        )


async def _execute(items: list[tuple[Build, asyncio.Future[list[Any]]]]) -> None:
    pipe = redis_async().pipeline(transaction=False)
    sizes = []
    for build, _ in items:
        before = len(pipe.command_stack)
        build(pipe)
        sizes.append(len(pipe.command_stack) - before)
    try:
        replies = await pipe.execute(raise_on_error=False)
    except BaseException as exc:
        for _, future in items:
            if not future.done():
                future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    start = 0
    for (_, future), size in zip(items, sizes, strict=True):
        if not future.done():
            future.set_result(replies[start : start + size])
        start += size
