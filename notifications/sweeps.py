"""Beat's two sweeps over the send ledger; each is safe to run beside the workers and beside itself.

- ``deliveries_requeue_due``: queued rows whose broker message will not come by itself are published
  again (the claim makes an extra copy harmless).
- ``deliveries_settle_stuck``: ``sending`` rows of dead workers and ``unknown`` rows are settled by asking
  the provider (``notifications.ledger.delivery_settle``) — never by sending again.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from interventions.selectors import deliveries_due_unclaimed, deliveries_unsettled
from interventions.services import deliveries_touch
from notifications import metrics
from notifications.ledger import delivery_settle
from notifications.providers import providers_for
from notifications.queues import SEND_CHANNELS, delivery_publish


def deliveries_requeue_due(*, limit: int = 1000) -> int:
    """Publish queued deliveries whose broker message is due but will not come by itself.

    Two kinds: a retry delayed longer than a countdown may be (it waits in the table), and a row whose
    message was lost (a worker killed with prefetched messages: the Redis transport would restore them
    only after the visibility timeout). Publishing an extra copy is harmless.
    """
    now = timezone.now()
    rows = deliveries_due_unclaimed(
        channels=SEND_CHANNELS,
        now=now,
        stale=now - timedelta(seconds=settings.NOTIFICATION_REQUEUE_AFTER_SECONDS),
        long_delay=timedelta(seconds=settings.NOTIFICATION_COUNTDOWN_MAX_SECONDS),
        limit=limit,
    )
    for delivery_id, channel in rows:
        delivery_publish(delivery_id=delivery_id, channel=channel)
    # Touch them so the next sweep does not publish them again before a worker had a chance.
    if rows:
        deliveries_touch(delivery_ids=[delivery_id for delivery_id, _ in rows], at=now)
    metrics.REQUEUED.inc(len(rows))
    return len(rows)


def deliveries_settle_stuck(*, limit: int = 500) -> dict[str, int]:
    """Settle ``sending`` rows of dead workers and ``unknown`` rows by asking the provider.

    Found at the provider → ``sent``. Every provider of the channel can look messages up and none has it
    → it never left: ``queued`` again. Otherwise → ``unknown``, for an operator (never resent blindly).
    """
    cutoff = timezone.now() - timedelta(seconds=settings.NOTIFICATION_SENDING_TIMEOUT_SECONDS)
    # An "unknown" row is worth another look only where some provider of its channel can look it up.
    can_lookup = [c for c in SEND_CHANNELS if any(p.can_lookup for p in providers_for(c))]
    counts = {"sent": 0, "queued": 0, "unknown": 0}
    for delivery in deliveries_unsettled(cutoff=cutoff, lookup_channels=can_lookup, limit=limit):
        counts[delivery_settle(delivery=delivery)] += 1
    return counts
