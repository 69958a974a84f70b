"""The send path: every email, SMS and push goes out once, or is visibly failed or unknown — never lost.

A delivery moves ``queued → sending → sent → delivered`` (or ``failed``, ``cancelled``, ``unknown``):

- **Claim.** A worker takes a delivery with one conditional UPDATE (``queued`` and due → ``sending``,
  attempts + 1). A duplicate or redelivered task finds nothing to claim and returns, so one delivery
  never reaches a provider twice from our side.
- **Outcome.** Sent → ``sent``. Transient error → the next provider of the channel (failover); when all
  failed, back to ``queued`` with ``next_attempt_at`` (exponential backoff, full jitter) until
  ``NOTIFICATION_MAX_ATTEMPTS``. Permanent error → ``failed`` at once, and the contact point is
  suppressed. No answer (read timeout) → ``unknown``: the provider may have the message.
- **Crash.** A row left ``sending`` by a dead worker, or ``unknown``, is settled by asking the provider
  (Twilio lists the messages it accepted); a provider with no lookup (SMTP, FCM) leaves it ``unknown``
  for an operator — never a blind resend.
- **Lost broker messages.** A ``queued`` row nobody claimed in time is enqueued again by beat; the
  claim makes the extra copy harmless.

This module runs the path from the task to the provider; ``notifications.ledger`` writes what the calls
came to and settles by asking, ``notifications.sweeps`` holds beat's two sweeps, and every change of a
delivery's row is an ``interventions.services`` call.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.observability import get_logger
from interventions.models import Delivery, Intervention
from interventions.selectors import deliveries_for_send, deliveries_queued_channels
from interventions.services import deliveries_claim, delivery_retry_schedule
from notifications import metrics
from notifications.channels import channel_reachable, quiet_hours_end
from notifications.ledger import (
    ProviderCall,
    SendAttempt,
    delivery_cancel_before_send,
    delivery_release,
    outcomes_write,
)
from notifications.messages import message_build
from notifications.providers import providers_for
from notifications.providers.base import Provider, ProviderError, TransientProviderError, UnknownOutcomeError
from notifications.queues import SEND_CHANNELS, deliveries_publish, delivery_publish
from notifications.ratelimit import ratelimit_acquire
from personalization.selectors import push_tokens_active

logger = get_logger(__name__)

# Longest a worker thread sleeps for a rate-limit token before handing the delivery back to the queue.
_MAX_THROTTLE_SLEEP = 2.0

# --- Enqueue ----------------------------------------------------------------------------------------


def deliveries_enqueue(*, delivery_ids: Sequence[UUID | str]) -> int:
    """Put queued deliveries on their channel's Celery queue. Call after the rows are committed.

    Several deliveries of one channel travel together, up to ``NOTIFICATION_TASK_BATCH_SIZE`` per task:
    a task costs the worker more CPU than a send, so a batch from the decision path is not split into
    one message each. Sending a delivery twice is harmless (the claim), so this may be called again for
    the same ids. Returns how many deliveries were published.
    """
    if not delivery_ids:
        return 0
    rows = deliveries_queued_channels(delivery_ids=delivery_ids, channels=SEND_CHANNELS)
    by_channel: dict[str, list[str]] = {}
    for delivery_id, channel in rows:
        by_channel.setdefault(channel, []).append(str(delivery_id))
    size = max(1, settings.NOTIFICATION_TASK_BATCH_SIZE)
    count = 0
    # One producer (and its broker connection) from the pool for every message of this call, and the
    # messages sent to the broker together (kombu's publish batch: one Redis pipeline per 500 messages
    # instead of a round trip each; on a transport without batches each is published at once).
    with current_app.producer_or_acquire() as producer, producer.batch(max_size=500):
        for channel, ids in by_channel.items():
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                if len(chunk) == 1:
                    delivery_publish(delivery_id=chunk[0], channel=channel, producer=producer)
                else:
                    deliveries_publish(delivery_ids=chunk, channel=channel, producer=producer)
                count += len(chunk)
    metrics.ENQUEUED.inc(count)
    return count


# --- Send -------------------------------------------------------------------------------------------


def delivery_send(*, delivery_id: UUID | str) -> str:
    """Send one delivery if it is still queued and due; returns what happened (for logs and tests)."""
    return _send_batch(delivery_ids=[delivery_id]).get(str(delivery_id), "skipped")


def deliveries_send(*, delivery_ids: Sequence[UUID | str]) -> dict[str, int]:
    """Send a batch: claimed in one statement, provider calls made concurrently, outcomes written in bulk.

    A crash between the claim and the outcome write leaves the batch's claimed rows ``sending``; the
    sweep settles them by asking the provider (never by sending again). See docs/notifications.md.
    """
    outcomes = _send_batch(delivery_ids=delivery_ids)
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for delivery_id in delivery_ids:
        key = str(delivery_id)
        outcome = "skipped" if key in seen else outcomes.get(key, "skipped")
        seen.add(key)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _send_batch(*, delivery_ids: Sequence[UUID | str]) -> dict[str, str]:
    now = timezone.now()
    claimed = deliveries_claim(delivery_ids=delivery_ids, now=now) if delivery_ids else []
    skipped = len(set(map(str, delivery_ids))) - len(claimed)
    if skipped:
        metrics.SKIPPED.inc(skipped)
    if not claimed:
        return {}
    deliveries = deliveries_for_send(delivery_ids=claimed)
    # A push batch's tokens in one query, not one per delivery.
    push_profiles = {d.intervention.profile_id for d in deliveries if d.channel == "push"}
    tokens = push_tokens_active(profile_ids=push_profiles) if push_profiles else {}
    outcomes: dict[str, str] = {}
    attempts: list[SendAttempt] = []
    for delivery in deliveries:
        push_tokens = tuple(tokens.get(delivery.intervention.profile_id, ()))
        outcome = _precheck(delivery=delivery, now=now, push_tokens=push_tokens)
        if outcome:
            outcomes[str(delivery.pk)] = outcome
        else:
            message = message_build(delivery=delivery, push_tokens=push_tokens)
            attempts.append(SendAttempt(delivery=delivery, message=message))
    if len(attempts) > 1:
        list(_pool().map(_attempt_run, attempts))
    elif attempts:
        _attempt_run(attempts[0])
    outcomes.update(outcomes_write(attempts=attempts))
    return outcomes


def _precheck(*, delivery: Delivery, now: datetime, push_tokens: tuple[str, ...]) -> str:
    """Re-checked at send time; "" when the delivery may go out, else what happened to it instead."""
    intervention = delivery.intervention
    profile = intervention.profile
    if intervention.status in (Intervention.Status.CANCELLED, Intervention.Status.EXPIRED):
        return delivery_cancel_before_send(delivery=delivery, reason=f"intervention {intervention.status}")
    # Consent, contact points and quiet hours may have changed since the decision was taken.
    if not channel_reachable(profile=profile, channel=delivery.channel, push_tokens=push_tokens):
        return delivery_cancel_before_send(delivery=delivery, reason="consent")
    quiet_end = quiet_hours_end(profile=profile, at=now)
    if quiet_end is not None:
        delivery_release(delivery=delivery, at=quiet_end, error="quiet hours", spend_attempt=False)
        return "deferred"
    return ""


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """One bounded pool per process (keyed by pid: a forked child builds its own), shared by every task
    thread: it caps the provider calls in flight, and so the connections each provider's pool keeps."""
    pid = os.getpid()
    pool = _pools.get(pid)
    if pool is None:
        with _pool_lock:
            pool = _pools.get(pid)
            if pool is None:
                pool = ThreadPoolExecutor(
                    max_workers=max(1, settings.NOTIFICATION_SEND_CONCURRENCY),
                    thread_name_prefix="provider-call",
                )
                _pools[pid] = pool
    return pool


def _attempt_run(attempt: SendAttempt) -> None:
    """The provider calls of one delivery, failover included. No database here: it runs in pool threads,
    and the outcome is written with the rest of the batch."""
    for provider in providers_for(attempt.delivery.channel):
        wait = _throttle(provider=provider)
        if wait:
            # This provider is at its rate; another may have room, else try again shortly.
            attempt.throttled.append(wait)
            continue
        started = time.perf_counter()
        try:
            result = provider.send(attempt.message)
        except ProviderError as error:
            latency_ms = int((time.perf_counter() - started) * 1000)
            attempt.failed_calls.append(
                ProviderCall(provider.name, error.kind, latency_ms, str(error)[:2000])
            )
            attempt.provider, attempt.error = provider.name, error
            if isinstance(error, TransientProviderError):
                continue
            return
        except Exception as error:
            # A bug or an unexpected library error: the message may have left, so never resend blindly.
            logger.exception(
                "provider_send_crashed", provider=provider.name, delivery_id=attempt.message.delivery_id
            )
            latency_ms = int((time.perf_counter() - started) * 1000)
            unknown = UnknownOutcomeError(f"{type(error).__name__}: {error}")
            attempt.failed_calls.append(
                ProviderCall(provider.name, unknown.kind, latency_ms, str(unknown)[:2000])
            )
            attempt.provider, attempt.error = provider.name, unknown
            return
        attempt.provider, attempt.result, attempt.error = provider.name, result, None
        attempt.latency_ms = int((time.perf_counter() - started) * 1000)
        return


def _throttle(*, provider: Provider) -> float:
    """0 when a token was taken (sleeping a little for it if needed), else the wait still ahead."""
    slept = 0.0
    while (wait := ratelimit_acquire(provider=provider.name)) > 0:
        if slept + wait > _MAX_THROTTLE_SLEEP:
            return wait
        time.sleep(wait)
        slept += wait
    return 0.0


# --- Operator actions (admin) -----------------------------------------------------------------------


@transaction.atomic
def delivery_retry(*, delivery: Delivery) -> Delivery:
    """An operator's retry of a failed or unknown delivery: queued again with a fresh attempt budget and
    published after commit. For ``unknown`` this is the operator's decision that the provider did not
    send it."""
    if delivery.channel not in SEND_CHANNELS:
        raise ApplicationError("Only email, SMS and push deliveries are sent by workers.")
    delivery = delivery_retry_schedule(delivery=delivery)
    channel = delivery.channel
    transaction.on_commit(lambda: delivery_publish(delivery_id=delivery.pk, channel=channel))
    return delivery
