"""After commit: what the decision path does once its interventions exist.

:meth:`Handoff.committed` counts the committed sends against caps in Redis, pushes the on-site
interventions to the shopper's sockets (``gateway.realtime.onsite_rows_push``, the one way in to the
gateway) and queues the other deliveries on Celery (``notifications.services.deliveries_enqueue``). Each
step is safe to repeat and a failure of one is logged, not raised: the rows are committed, the browser's
``resume`` replays on-site messages from PostgreSQL and beat re-queues stale deliveries.

A plain ``Handoff()`` does that in the caller's thread (the API, beat tasks). The consumer makes a
``Handoff(threaded=True)``, closed when it stops: pushing and queueing (a Redis round trip per message)
run on one side thread beside the next batch instead of in front of it, in commit order, and the sends
are counted by the next batch's caps read (one Redis round trip less per batch).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from django.db import close_old_connections

from core.observability import get_logger
from core.redis import redis_sync
from delivery import metrics
from delivery.eligibility import Send, record_sends
from gateway.realtime import FrameFacts, onsite_rows_push
from notifications.services import deliveries_enqueue

logger = get_logger(__name__)


class Handoff:
    def __init__(self, *, threaded: bool = False) -> None:
        # Sends of committed batches not yet counted in Redis: the committing thread's only.
        self._unrecorded: list[Send] = []
        # The side thread's event loop, for its lifetime: the channel layer's Redis connections are
        # opened once, not for every batch.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff", initializer=self._thread_start)
            if threaded
            else None
        )

    def _thread_start(self) -> None:
        self._loop = asyncio.new_event_loop()

    def _thread_stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()

    def close(self) -> None:
        """Count the sends still waiting and finish the side thread's work (a stop loses nothing already
        committed)."""
        self.caps_record_pending()
        if self._executor is not None:
            self._executor.submit(self._thread_stop)
            self._executor.shutdown(wait=True)
            self._executor = None

    # --- Caps ---------------------------------------------------------------------------------------------

    def caps_waiting(self) -> bool:
        """Are sends of committed batches waiting to be counted in Redis?"""
        return bool(self._unrecorded)

    def caps_record_pending(self) -> bool:
        """Write the sends that wait for the next batch's caps read; True if there were any."""
        if not self._unrecorded:
            return False
        sends = self._unrecorded[:]
        self._unrecorded.clear()
        _caps_record(sends)
        return True

    def caps_take(self) -> list[Send]:
        """The waiting sends, for the caps read about to write them; give them back with
        :meth:`caps_untake` if that read fails."""
        sends = self._unrecorded[:]
        self._unrecorded.clear()
        return sends

    def caps_untake(self, sends: Sequence[Send]) -> None:
        self._unrecorded[:0] = sends  # still to be written, before any later batch's own sends

    # --- After commit -------------------------------------------------------------------------------------

    def committed(
        self,
        *,
        sends: Sequence[Send] = (),
        onsite_rows: Sequence[tuple[str, FrameFacts]] = (),
        delivery_ids: Sequence[UUID] = (),
    ) -> None:
        """Call from ``transaction.on_commit``: count ``sends``, push ``(user_id, intervention)`` of the
        pending on-site interventions just committed, queue ``delivery_ids``."""
        if sends:
            if self._executor is not None:
                # Sends still waiting from before were not taken by this batch (it read no caps): written
                # now, so they never wait more than one batch (or the consumer's idle poll, which writes
                # them too).
                self.caps_record_pending()
                self._unrecorded.extend(sends)
            else:
                _caps_record(sends)
        if not onsite_rows and not delivery_ids:
            return
        committed = time.monotonic()
        if self._executor is not None:
            self._executor.submit(
                self._deliver, onsite_rows=onsite_rows, delivery_ids=delivery_ids, committed=committed
            )
        else:
            self._deliver(onsite_rows=onsite_rows, delivery_ids=delivery_ids, committed=committed)

    def _deliver(
        self,
        *,
        onsite_rows: Sequence[tuple[str, FrameFacts]],
        delivery_ids: Sequence[UUID],
        committed: float,
    ) -> None:
        """Push the on-site frames and queue the other deliveries (``committed``: when, on the monotonic
        clock)."""
        if self._executor is not None:
            # The side thread has its own connection, never recycled by a request cycle: check it here.
            close_old_connections()
        if onsite_rows:
            try:
                onsite_rows_push(rows=onsite_rows, loop=self._loop)
                metrics.PUSH_SECONDS.observe(time.monotonic() - committed)
            except Exception:
                # The browser's resume replays from PostgreSQL; nothing is lost.
                logger.exception("onsite_push_failed", count=len(onsite_rows))
        if delivery_ids:
            try:
                deliveries_enqueue(delivery_ids=delivery_ids)
            except Exception:
                logger.exception("deliveries_enqueue_failed", count=len(delivery_ids))


def _caps_record(sends: Sequence[Send]) -> None:
    try:
        record_sends(redis=redis_sync(), sends=sends)
    except Exception:
        # The sends are committed; counting them is best effort (an under-count, never a double count).
        logger.exception("caps_record_failed", sends=len(sends))
