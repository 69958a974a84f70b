"""The send ledger: every email, SMS and push goes out once, or is visibly failed or unknown — never lost.

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
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import unescape
from typing import Any
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape

from core.errors import ApplicationError, ConflictError
from core.observability import get_logger
from interventions.lifecycle import intervention_events_enqueue
from interventions.models import Delivery, Intervention
from notifications import metrics
from notifications.channels import channel_reachable, quiet_hours_end
from notifications.models import ProviderAttempt
from notifications.providers import providers_for
from notifications.providers.base import (
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    SendResult,
    TransientProviderError,
    UnknownOutcomeError,
)
from notifications.ratelimit import ratelimit_acquire
from notifications.signed_links import click_url, open_pixel_url, unsubscribe_url
from personalization.models import Profile, PushToken

logger = get_logger(__name__)

SEND_CHANNELS = ("email", "sms", "push")
TASK_FOR_CHANNEL = {
    "email": "notifications.delivery_send_email",
    "sms": "notifications.delivery_send_sms",
    "push": "notifications.delivery_send_push",
}
BATCH_TASK = "notifications.deliveries_send"
# Longest a worker thread sleeps for a rate-limit token before handing the delivery back to the queue.
_MAX_THROTTLE_SLEEP = 2.0
_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)
# A character reference ending in ";" (named or numeric). Inside an attribute a browser decodes only these:
# a legacy name without ";" followed by "=" or a letter ("?a=1&copy=2") stays as written.
_CHARACTER_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _attribute_value(raw: str) -> str:
    """The URL a mail client follows for ``href="raw"``: the attribute's character references decoded
    (``&amp;`` is ``&``). Signing the raw text would redirect to ``?a=1&amp;b=2``."""
    return _CHARACTER_REFERENCE.sub(lambda match: unescape(match.group(0)), raw)


# QuerySet.update() does not touch auto_now fields; every ledger write sets ``updated_at`` itself
# (``Now()``: the database's clock), because the sweeps read it.

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
    # Plain SQL: on the decision path's hot path, building the ORM query cost about as much CPU as
    # running it.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, channel FROM {Delivery._meta.db_table}"  # noqa: S608  (model's table name)
            " WHERE id = ANY(%s) AND status = %s AND channel = ANY(%s)",
            [[UUID(str(i)) for i in delivery_ids], Delivery.Status.QUEUED, list(SEND_CHANNELS)],
        )
        rows = cursor.fetchall()
    by_channel: dict[str, list[str]] = {}
    for delivery_id, channel in rows:
        by_channel.setdefault(channel, []).append(str(delivery_id))
    size = max(1, settings.NOTIFICATION_TASK_BATCH_SIZE)
    count = 0
    # One producer (and its broker connection) from the pool for every message of this call.
    with current_app.producer_or_acquire() as producer:
        for channel, ids in by_channel.items():
            for start in range(0, len(ids), size):
                chunk = ids[start : start + size]
                if len(chunk) == 1:
                    _publish(delivery_id=chunk[0], channel=channel, producer=producer)
                else:
                    current_app.send_task(BATCH_TASK, args=[chunk], queue=channel, producer=producer)
                count += len(chunk)
    metrics.ENQUEUED.inc(count)
    return count


def _publish(
    *, delivery_id: UUID | str, channel: str, countdown: float | None = None, producer: Any = None
) -> None:
    current_app.send_task(
        TASK_FOR_CHANNEL[channel],
        args=[str(delivery_id)],
        queue=channel,
        countdown=countdown,
        producer=producer,
    )


# --- Send -------------------------------------------------------------------------------------------


def _claim(*, delivery_ids: Sequence[UUID | str], now: datetime) -> list[UUID]:
    """``queued`` and due → ``sending``, attempts + 1, for a whole batch in ONE conditional UPDATE
    committed at once (before any provider call); returns the ids this caller moved.

    Exactly one caller wins each row; a duplicate or redelivered task, or one racing another worker, gets
    nothing back for it.
    """
    ids = list({UUID(str(delivery_id)) for delivery_id in delivery_ids})
    # A retry's countdown may fire a moment before next_attempt_at on a worker with a drifting clock.
    due_by = now + timedelta(seconds=1)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Delivery._meta.db_table}
               SET status = %s, attempts = attempts + 1, sending_at = %s, next_attempt_at = NULL,
                   updated_at = now()
             WHERE id = ANY(%s) AND status = %s AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
            RETURNING id
            """,  # noqa: S608  (table name from the model, values as parameters)
            [Delivery.Status.SENDING, now, ids, Delivery.Status.QUEUED, due_by],
        )
        return [row[0] for row in cursor.fetchall()]


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


@dataclass
class _Attempt:
    """What the provider calls for one delivery came to; built off the database, in a pool thread."""

    delivery: Delivery
    message: OutgoingMessage
    provider: str = ""
    result: SendResult | None = None
    latency_ms: int = 0
    error: ProviderError | None = None
    # Calls that failed before the outcome (failover): (provider, kind, latency ms, error text).
    failed_calls: list[tuple[str, str, int, str]] = field(default_factory=list)
    throttled: list[float] = field(default_factory=list)


def _send_batch(*, delivery_ids: Sequence[UUID | str]) -> dict[str, str]:
    now = timezone.now()
    claimed = _claim(delivery_ids=delivery_ids, now=now) if delivery_ids else []
    skipped = len(set(map(str, delivery_ids))) - len(claimed)
    if skipped:
        metrics.SKIPPED.inc(skipped)
    if not claimed:
        return {}
    # The shopper's and the decision's large JSON columns play no part in a send: not loaded, not decoded.
    deliveries = list(
        Delivery.objects.select_related("intervention__profile")
        .defer(
            "provider_response",
            "intervention__context",
            "intervention__profile__attributes",
            "intervention__profile__last_cart",
            "intervention__profile__engagement",
        )
        .filter(id__in=claimed)
    )
    # A push batch's tokens in one query, not one per delivery.
    tokens: dict[int, list[str]] = {}
    push_profiles = {d.intervention.profile_id for d in deliveries if d.channel == "push"}
    if push_profiles:
        active = PushToken.objects.filter(profile_id__in=push_profiles, is_active=True).order_by("id")
        for profile_id, token in active.values_list("profile_id", "token"):
            tokens.setdefault(profile_id, []).append(token)
    outcomes: dict[str, str] = {}
    attempts: list[_Attempt] = []
    for delivery in deliveries:
        push_tokens = tuple(tokens.get(delivery.intervention.profile_id, ()))
        outcome = _precheck(delivery=delivery, now=now, push_tokens=push_tokens)
        if outcome:
            outcomes[str(delivery.pk)] = outcome
        else:
            message = message_build(delivery=delivery, push_tokens=push_tokens)
            attempts.append(_Attempt(delivery=delivery, message=message))
    if len(attempts) > 1:
        list(_pool().map(_attempt_run, attempts))
    elif attempts:
        _attempt_run(attempts[0])
    outcomes.update(_outcomes_write(attempts=attempts))
    return outcomes


def _precheck(*, delivery: Delivery, now: datetime, push_tokens: tuple[str, ...]) -> str:
    """Re-checked at send time; "" when the delivery may go out, else what happened to it instead."""
    intervention = delivery.intervention
    profile = intervention.profile
    if intervention.status in (Intervention.Status.CANCELLED, Intervention.Status.EXPIRED):
        return _cancel(delivery=delivery, reason=f"intervention {intervention.status}")
    # Consent, contact points and quiet hours may have changed since the decision was taken.
    if not channel_reachable(profile=profile, channel=delivery.channel, push_tokens=push_tokens):
        return _cancel(delivery=delivery, reason="consent")
    quiet_end = quiet_hours_end(profile=profile, at=now)
    if quiet_end is not None:
        _release(delivery=delivery, at=quiet_end, error="quiet hours", count_attempt=False)
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


def _attempt_run(attempt: _Attempt) -> None:
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
            attempt.failed_calls.append((provider.name, error.kind, latency_ms, str(error)[:2000]))
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
            attempt.failed_calls.append((provider.name, unknown.kind, latency_ms, str(unknown)[:2000]))
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


def _outcomes_write(*, attempts: list[_Attempt]) -> dict[str, str]:
    """Every provider call recorded and every sent delivery marked in one transaction; the rarer
    outcomes (failed, unknown, retry, throttled) one by one after it."""
    outcomes: dict[str, str] = {}
    sent = [attempt for attempt in attempts if attempt.result is not None]
    records: list[dict[str, Any]] = []
    for attempt in attempts:
        for provider, kind, latency_ms, error_text in attempt.failed_calls:
            logger.warning(
                "provider_send_failed",
                provider=provider,
                delivery_id=attempt.message.delivery_id,
                kind=kind,
                error=error_text,
            )
            records.append(_attempt_row(attempt.delivery, provider, kind, latency_ms, error_text))
    for attempt in sent:
        records.append(_attempt_row(attempt.delivery, attempt.provider, "sent", attempt.latency_ms, ""))
    if records:
        with transaction.atomic():
            if sent:
                _no_fsync_wait()
            _attempts_insert(rows=records)
            if sent:
                _sent_write(attempts=sent)
    for attempt in sent:
        outcomes[str(attempt.delivery.pk)] = "sent"
        metrics.OUTCOMES.labels(channel=attempt.delivery.channel, outcome="sent").inc()
    for attempt in attempts:
        if attempt.result is not None:
            continue
        delivery, error = attempt.delivery, attempt.error
        key = str(delivery.pk)
        if isinstance(error, PermanentProviderError):
            _fail(delivery=delivery, provider=attempt.provider, error=error)
            outcomes[key] = "failed"
        elif isinstance(error, UnknownOutcomeError):
            _mark_unknown(delivery=delivery, provider=attempt.provider, error=str(error))
            outcomes[key] = "unknown"
        elif error is None and attempt.throttled:
            # Only rate limits stood in the way: not a failure, so no attempt is spent and no backoff.
            at = timezone.now() + timedelta(seconds=min(attempt.throttled))
            with transaction.atomic():
                _release(delivery=delivery, at=at, error="rate limited", count_attempt=False)
            outcomes[key] = "throttled"
        else:
            if error is None:
                error = TransientProviderError(f"no provider configured for {delivery.channel}")
            outcomes[key] = _retry_or_fail(delivery=delivery, error=error)
    return outcomes


def _attempt_row(
    delivery: Delivery, provider: str, outcome: str, latency_ms: int, error: str
) -> dict[str, Any]:
    metrics.PROVIDER_CALLS.labels(provider=provider, outcome=outcome).inc()
    metrics.PROVIDER_LATENCY.labels(provider=provider).observe(latency_ms / 1000)
    return {
        "provider": provider,
        "channel": delivery.channel,
        "delivery_id": str(delivery.pk),
        "outcome": outcome,
        "latency_ms": latency_ms,
        "error": error,
    }


def _attempts_insert(*, rows: list[dict[str, Any]]) -> None:
    """The batch's ``ProviderAttempt`` rows in one INSERT from one JSON parameter (bulk_create's model
    instances and per-field compilation were ≈ 10 % of a send's CPU)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {ProviderAttempt._meta.db_table}
                   (provider, channel, delivery_id, outcome, latency_ms, error, created_at)
            SELECT provider, channel, delivery_id, outcome, latency_ms, error, %s
              FROM jsonb_to_recordset(%s::jsonb)
                   AS v(provider text, channel text, delivery_id uuid, outcome text, latency_ms int,
                        error text)
            """,  # noqa: S608  (table name from the model, values as parameters)
            [timezone.now(), json.dumps(rows)],
        )


def _no_fsync_wait() -> None:
    # The claim committed synchronously; an outcome may commit without waiting for the WAL flush. If
    # PostgreSQL crashed in that instant the rows would be back at "sending" and be settled like a worker
    # crash (asked of the provider, or "unknown") — never sent twice — so the fsync wait is not needed.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _sent_write(*, attempts: list[_Attempt]) -> None:
    """``sending`` (or ``unknown``: a send that outlived the sending timeout may have been marked so by
    the sweeper) → ``sent`` for the batch in one UPDATE, and one outbox insert for their events."""
    # One statement for the batch, its values as one JSON parameter: Django's bulk_update builds a CASE
    # per field and row, which cost more CPU than the sends themselves (≈ 5 ms per delivery).
    rows = []
    for attempt in attempts:
        assert attempt.result is not None
        rows.append(
            {
                "id": str(attempt.delivery.pk),
                "provider": attempt.provider,
                "message_id": attempt.result.provider_message_id[:200],
                "response": attempt.result.response,
            }
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Delivery._meta.db_table} AS d
               SET status = %s, provider = v.provider, provider_message_id = v.message_id,
                   provider_response = v.response, sent_at = %s, last_error = '', error_kind = '',
                   updated_at = now()
              FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, provider text, message_id text, response jsonb)
             WHERE d.id = v.id AND d.status IN (%s, %s)
            """,  # noqa: S608  (table name from the model, values as parameters)
            [
                Delivery.Status.SENT,
                timezone.now(),
                json.dumps(rows, cls=DjangoJSONEncoder),
                Delivery.Status.SENDING,
                Delivery.Status.UNKNOWN,
            ],
        )
    for attempt in attempts:
        assert attempt.result is not None
        if attempt.result.dead_tokens:
            push_tokens_deactivate(
                profile=attempt.delivery.intervention.profile, tokens=attempt.result.dead_tokens
            )
    intervention_events_enqueue(
        events=[
            (
                attempt.delivery.intervention,
                "delivery.sent",
                {
                    "channel": attempt.delivery.channel,
                    "reason": "",
                    "extra": {"delivery_id": str(attempt.delivery.pk), "provider": attempt.provider},
                },
            )
            for attempt in attempts
        ]
    )


def _attempt_record(
    *, delivery: Delivery, provider: str, outcome: str, latency_ms: int, error: str = ""
) -> None:
    metrics.PROVIDER_CALLS.labels(provider=provider, outcome=outcome).inc()
    metrics.PROVIDER_LATENCY.labels(provider=provider).observe(latency_ms / 1000)
    ProviderAttempt.objects.create(
        provider=provider,
        channel=delivery.channel,
        delivery_id=delivery.pk,
        outcome=outcome,
        latency_ms=latency_ms,
        error=error,
    )


def _event(delivery: Delivery, type: str, *, reason: str = "", provider: str = "") -> None:
    extra: dict[str, Any] = {"delivery_id": str(delivery.pk)}
    if provider:
        extra["provider"] = provider
    intervention_events_enqueue(
        events=[
            (delivery.intervention, type, {"channel": delivery.channel, "reason": reason, "extra": extra})
        ]
    )


@transaction.atomic
def _mark_sent(
    *, delivery: Delivery, provider: str, result: SendResult, latency_ms: int | None = None
) -> None:
    now = timezone.now()
    _no_fsync_wait()
    if latency_ms is not None:
        _attempt_record(delivery=delivery, provider=provider, outcome="sent", latency_ms=latency_ms)
    # "unknown" too: a send that outlived the sending timeout may have been marked so by the sweeper.
    Delivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.Status.SENDING, Delivery.Status.UNKNOWN]
    ).update(
        updated_at=Now(),
        status=Delivery.Status.SENT,
        provider=provider,
        provider_message_id=result.provider_message_id[:200],
        provider_response=result.response,
        sent_at=now,
        last_error="",
        error_kind="",
    )
    if result.dead_tokens:
        push_tokens_deactivate(profile=delivery.intervention.profile, tokens=result.dead_tokens)
    _event(delivery, "delivery.sent", provider=provider)
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="sent").inc()


@transaction.atomic
def _fail(*, delivery: Delivery, provider: str, error: ProviderError) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(),
        status=Delivery.Status.FAILED,
        provider=provider,
        provider_response=error.response,
        last_error=str(error)[:2000],
        error_kind=error.kind,
        failed_at=timezone.now(),
    )
    if isinstance(error, PermanentProviderError):
        contact_suppress(delivery=delivery, subject=error.subject)
    _event(delivery, "delivery.failed", reason=error.kind, provider=provider)
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="failed").inc()


@transaction.atomic
def _mark_unknown(*, delivery: Delivery, provider: str, error: str) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(),
        status=Delivery.Status.UNKNOWN,
        provider=provider,
        last_error=error[:2000],
        error_kind="unknown",
    )
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="unknown").inc()


@transaction.atomic
def _cancel(*, delivery: Delivery, reason: str) -> str:
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=Now(), status=Delivery.Status.CANCELLED, last_error=reason, resolved_at=timezone.now()
    )
    _event(delivery, "delivery.cancelled", reason=reason)
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="cancelled").inc()
    return "cancelled"


def _release(*, delivery: Delivery, at: datetime, error: str, count_attempt: bool, kind: str = "") -> None:
    """Hand the delivery back to the queue, due at ``at``; short delays ride a Celery countdown."""
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
        updated_at=Now(),
        status=Delivery.Status.QUEUED,
        next_attempt_at=at,
        last_error=error[:2000],
        error_kind=kind,
        attempts=F("attempts") if count_attempt else F("attempts") - 1,
    )
    delay = (at - timezone.now()).total_seconds()
    if delay <= settings.NOTIFICATION_COUNTDOWN_MAX_SECONDS:
        channel = delivery.channel
        transaction.on_commit(
            lambda: _publish(delivery_id=delivery.pk, channel=channel, countdown=max(delay, 0))
        )
    # Longer delays wait in PostgreSQL: deliveries_requeue_due (beat) publishes them when due.


def retry_delay(*, attempts: int) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base · 2^(attempts-1)))."""
    ceiling = min(
        settings.NOTIFICATION_BACKOFF_MAX_SECONDS,
        settings.NOTIFICATION_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0),
    )
    return random.uniform(0, ceiling)  # noqa: S311  (jitter, not security)


@transaction.atomic
def _retry_or_fail(*, delivery: Delivery, error: ProviderError) -> str:
    attempts = Delivery.objects.values_list("attempts", flat=True).get(pk=delivery.pk)
    if attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        _fail(delivery=delivery, provider=delivery.provider, error=error)
        return "failed"
    at = timezone.now() + timedelta(seconds=retry_delay(attempts=attempts))
    _release(delivery=delivery, at=at, error=str(error), count_attempt=True, kind="transient")
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="retry").inc()
    return "retry"


# --- Message ----------------------------------------------------------------------------------------


def _content(delivery: Delivery) -> dict[str, Any]:
    """The intervention's rendered content for this channel (per-channel dict, or one flat dict)."""
    content: dict[str, Any] = delivery.intervention.content or {}
    nested = content.get(delivery.channel)
    return nested if isinstance(nested, dict) else content


def message_build(*, delivery: Delivery, push_tokens: tuple[str, ...] | None = None) -> OutgoingMessage:
    """What goes to the provider; deterministic, so a lookup can recognise an earlier attempt.

    ``push_tokens``: the shopper's active tokens when the caller loaded them already (a batch does).
    """
    intervention = delivery.intervention
    profile = intervention.profile
    content = _content(delivery)
    subject = str(content.get("subject") or content.get("title") or "")
    text = str(content.get("body_text") or content.get("body") or "")
    cta_url = str(content.get("cta_url") or "")
    delivery_id = str(delivery.pk)
    if delivery.channel == "email":
        return _email_message(delivery=delivery, profile=profile, subject=subject, text=text, content=content)
    if delivery.channel == "sms":
        if cta_url:
            text = f"{text} {click_url(delivery_id=delivery_id, target=cta_url)}".strip()
        return OutgoingMessage(
            delivery_id=delivery_id,
            channel="sms",
            to=profile.phone,
            text=text,
            status_callback=settings.TWILIO_STATUS_CALLBACK_URL,
        )
    tokens = push_tokens
    if tokens is None:
        tokens = tuple(
            profile.push_tokens.filter(is_active=True).order_by("id").values_list("token", flat=True)
        )
    data = {"intervention_id": str(intervention.pk)}
    if cta_url:
        data["url"] = click_url(delivery_id=delivery_id, target=cta_url)
    return OutgoingMessage(
        delivery_id=delivery_id,
        channel="push",
        to=tokens[0] if tokens else "",
        subject=subject,
        text=text,
        data=data,
        tokens=tokens,
    )


def _email_message(
    *, delivery: Delivery, profile: Profile, subject: str, text: str, content: dict[str, Any]
) -> OutgoingMessage:
    delivery_id = str(delivery.pk)
    unsubscribe = unsubscribe_url(delivery_id=delivery_id, profile_id=profile.pk)
    cta_url = str(content.get("cta_url") or "")
    body_html = str(content.get("body_html") or content.get("html") or "")
    if not body_html and text:
        body_html = "<p>" + escape(text).replace("\n", "<br>") + "</p>"
    # Every http(s) link goes through the signed click redirect, which is signed over the URL itself.
    body_html = _HREF.sub(
        lambda match: (
            f'href="{escape(click_url(delivery_id=delivery_id, target=_attribute_value(match.group(1))))}"'
        ),
        body_html,
    )
    html = render_to_string(
        "notifications/email.html",
        {
            "subject": subject,
            "body_html": body_html,
            "cta_label": content.get("cta_label") or "",
            "cta_url": click_url(delivery_id=delivery_id, target=cta_url) if cta_url else "",
            "image_url": content.get("image_url") or "",
            "unsubscribe_url": unsubscribe,
            "pixel_url": open_pixel_url(delivery_id=delivery_id),
        },
    )
    text_lines = [text]
    if cta_url:
        text_lines.append(
            f"{content.get('cta_label') or cta_url}: {click_url(delivery_id=delivery_id, target=cta_url)}"
        )
    text_lines.append(f"Unsubscribe: {unsubscribe}")
    mailto = f"mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe"
    return OutgoingMessage(
        delivery_id=delivery_id,
        channel="email",
        to=profile.email,
        subject=subject,
        text="\n\n".join(line for line in text_lines if line),
        html=html,
        # RFC 2369 + RFC 8058: mail clients show a one-click unsubscribe that POSTs to the https URL.
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>, <{mailto}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


# --- Profile side effects ---------------------------------------------------------------------------


def contact_suppress(*, delivery: Delivery, subject: str) -> None:
    """A permanent error names a dead contact point: stop using it (address, number or push tokens)."""
    profile = delivery.intervention.profile
    now = timezone.now()
    if delivery.channel == "email":
        Profile.objects.filter(pk=profile.pk, email_suppressed_at__isnull=True).update(
            email_suppressed_at=now
        )
    elif delivery.channel == "sms" and subject == "phone":
        Profile.objects.filter(pk=profile.pk, phone_suppressed_at__isnull=True).update(
            phone_suppressed_at=now
        )
    elif delivery.channel == "push" and subject:
        push_tokens_deactivate(profile=profile, tokens=subject.split(","))


def push_tokens_deactivate(*, profile: Profile, tokens: Iterable[str]) -> int:
    return PushToken.objects.filter(profile=profile, token__in=list(tokens), is_active=True).update(
        is_active=False, invalidated_at=timezone.now()
    )


@transaction.atomic
def profile_email_unsubscribe(*, profile_id: int) -> Profile:
    """Record a one-click opt-out at once (RFC 8058): no further marketing email to this shopper."""
    profile = Profile.objects.select_for_update().get(pk=profile_id)
    if profile.consent_email:
        profile.consent_email = False
        profile.save(update_fields=["consent_email", "updated_at"])
    # Queued email that has not left yet is cancelled at its send-time consent check.
    return profile


# --- Sweeps (beat) ----------------------------------------------------------------------------------


def deliveries_requeue_due(*, limit: int = 1000) -> int:
    """Publish queued deliveries whose broker message is due but will not come by itself.

    Two kinds: a retry delayed longer than a countdown may be (it waits in the table), and a row whose
    message was lost (a worker killed with prefetched messages: the Redis transport would restore them
    only after the visibility timeout). Publishing an extra copy is harmless.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.NOTIFICATION_REQUEUE_AFTER_SECONDS)
    long_delay = timedelta(seconds=settings.NOTIFICATION_COUNTDOWN_MAX_SECONDS)
    rows = list(
        Delivery.objects.filter(status=Delivery.Status.QUEUED, channel__in=SEND_CHANNELS)
        .filter(
            Q(next_attempt_at__lte=now, next_attempt_at__gt=F("updated_at") + long_delay)
            | Q(next_attempt_at__isnull=True, updated_at__lte=stale)
            | Q(next_attempt_at__lte=stale)
        )
        .order_by("updated_at")
        .values_list("id", "channel")[:limit]
    )
    for delivery_id, channel in rows:
        _publish(delivery_id=delivery_id, channel=channel)
    # Touch them so the next sweep does not publish them again before a worker had a chance.
    if rows:
        Delivery.objects.filter(
            id__in=[r[0] for r in rows], status=Delivery.Status.QUEUED, next_attempt_at__isnull=True
        ).update(updated_at=now)
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
    rows = list(
        Delivery.objects.select_related("intervention__profile")
        .filter(
            Q(status=Delivery.Status.SENDING, sending_at__lte=cutoff)
            | Q(
                status=Delivery.Status.UNKNOWN,
                channel__in=can_lookup,
                resolved_at__isnull=True,
                updated_at__lte=cutoff,
            )
        )
        .order_by("sending_at")[:limit]
    )
    counts = {"sent": 0, "queued": 0, "unknown": 0}
    for delivery in rows:
        counts[delivery_settle(delivery=delivery)] += 1
    return counts


def delivery_settle(*, delivery: Delivery) -> str:
    message = message_build(delivery=delivery)
    sent_after = delivery.sending_at or delivery.queued_at
    all_can_tell = True
    for provider in providers_for(delivery.channel):
        try:
            found = provider.lookup(message, sent_after=sent_after)
        except ProviderError:
            found = None
        if found is None:
            all_can_tell = False
            continue
        if found.found:
            with transaction.atomic():
                _mark_sent(
                    delivery=delivery,
                    provider=provider.name,
                    result=SendResult(
                        provider_message_id=found.provider_message_id,
                        response={**found.response, "settled": True},
                    ),
                )
            return "sent"
    with transaction.atomic():
        current = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if current.status not in (Delivery.Status.SENDING, Delivery.Status.UNKNOWN):
            return "sent"  # a late answer from the provider settled it meanwhile
        if all_can_tell:
            Delivery.objects.filter(pk=delivery.pk).update(
                updated_at=Now(),
                status=Delivery.Status.QUEUED,
                next_attempt_at=None,
                last_error="not found at the provider after an interrupted send",
            )
            channel = delivery.channel
            transaction.on_commit(lambda: _publish(delivery_id=delivery.pk, channel=channel))
            return "queued"
        if current.status == Delivery.Status.UNKNOWN:
            return "unknown"
        Delivery.objects.filter(pk=delivery.pk).update(
            updated_at=Now(),
            status=Delivery.Status.UNKNOWN,
            error_kind="unknown",
            last_error=current.last_error or "worker stopped during the provider call; outcome unknown",
        )
        return "unknown"


# --- Operator actions (admin) -----------------------------------------------------------------------


@transaction.atomic
def delivery_retry(*, delivery: Delivery) -> Delivery:
    """An operator's retry of a failed or unknown delivery: queued again with a fresh attempt budget.

    For ``unknown`` this is the operator's decision that the provider did not send it.
    """
    if delivery.channel not in SEND_CHANNELS:
        raise ApplicationError("Only email, SMS and push deliveries are sent by workers.")
    updated = Delivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.Status.FAILED, Delivery.Status.UNKNOWN]
    ).update(
        updated_at=Now(),
        status=Delivery.Status.QUEUED,
        attempts=0,
        next_attempt_at=None,
        error_kind="",
        resolved_at=None,
        failed_at=None,
    )
    if not updated:
        raise ConflictError(
            f"Delivery {delivery.pk} is {delivery.status}; only failed or unknown can be retried."
        )
    channel = delivery.channel
    transaction.on_commit(lambda: _publish(delivery_id=delivery.pk, channel=channel))
    delivery.refresh_from_db()
    return delivery


@transaction.atomic
def delivery_resolve(*, delivery: Delivery, note: str = "") -> Delivery:
    """An operator closes a failed or unknown delivery: it stays as it is and leaves the work lists."""
    updated = Delivery.objects.filter(
        pk=delivery.pk, status__in=[Delivery.Status.FAILED, Delivery.Status.UNKNOWN]
    ).update(updated_at=Now(), resolved_at=timezone.now(), last_error=note if note else F("last_error"))
    if not updated:
        raise ConflictError(
            f"Delivery {delivery.pk} is {delivery.status}; only failed or unknown can be resolved."
        )
    delivery.refresh_from_db()
    return delivery


# --- Provider reports after the send (webhooks) -----------------------------------------------------


@transaction.atomic
def delivery_failure_report(
    *, delivery: Delivery, reason: str, permanent: bool, response: dict[str, Any] | None = None
) -> bool:
    """A provider reports a message it had accepted as undeliverable (bounce, Twilio "undelivered").

    Permanent reports suppress the contact point like a permanent send error. Returns False when the
    delivery was not in a state a report can change (already failed, cancelled).
    """
    updated = Delivery.objects.filter(
        pk=delivery.pk,
        status__in=[Delivery.Status.SENT, Delivery.Status.DELIVERED, Delivery.Status.UNKNOWN],
    ).update(
        updated_at=Now(),
        status=Delivery.Status.FAILED,
        error_kind="permanent" if permanent else "transient",
        last_error=reason[:2000],
        provider_response={**delivery.provider_response, "report": response or {}},
        failed_at=timezone.now(),
    )
    if not updated:
        return False
    if permanent:
        contact_suppress(delivery=delivery, subject="phone" if delivery.channel == "sms" else "address")
    _event(delivery, "delivery.failed", reason=reason[:200], provider=delivery.provider)
    return True


@transaction.atomic
def profile_email_complaint_record(*, profile_id: int) -> None:
    """A spam complaint: never email this shopper again (consent off, address suppressed)."""
    Profile.objects.filter(pk=profile_id).update(consent_email=False, email_suppressed_at=timezone.now())
