"""What the provider calls came to: each call recorded, each delivery's outcome written, settled by asking.

- **Attempts.** Every provider call becomes one ``ProviderAttempt`` row (``provider_attempts_record``: the
  one writer), what the health view's success rate and latency are made of.
- **Outcomes.** A batch's attempts and its sent deliveries are written in ONE transaction; the rarer
  outcomes (failed, unknown, retry, throttled) one by one after it, each in its own transaction with its
  lifecycle event (``interventions.services``) and its effect on the shopper's contact points
  (``personalization.services``).
- **Settle.** A row left ``sending`` or ``unknown`` is settled by asking the provider: found → ``sent``;
  every provider can look up and none has it → ``queued`` again; otherwise ``unknown`` — never resent
  blindly.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.observability import get_logger
from interventions.models import Delivery
from interventions.services import (
    DeliverySent,
    deliveries_mark_sent,
    delivery_cancel,
    delivery_mark_failed,
    delivery_mark_undelivered,
    delivery_mark_unfound,
    delivery_mark_unknown,
    delivery_requeue,
)
from notifications import metrics
from notifications.messages import message_build
from notifications.models import ProviderAttempt
from notifications.providers import providers_for
from notifications.providers.base import (
    OutgoingMessage,
    PermanentProviderError,
    ProviderError,
    SendResult,
    TransientProviderError,
    UnknownOutcomeError,
)
from notifications.queues import delivery_publish
from personalization.services import (
    profile_email_suppress,
    profile_phone_suppress,
    push_tokens_deactivate,
)

logger = get_logger(__name__)


@dataclass(frozen=True)
class ProviderCall:
    provider: str
    outcome: str  # a ProviderAttempt.Outcome value
    latency_ms: int
    error: str = ""


@dataclass
class SendAttempt:
    """What the provider calls for one delivery came to; built off the database, in a pool thread."""

    delivery: Delivery
    message: OutgoingMessage
    provider: str = ""
    result: SendResult | None = None
    latency_ms: int = 0
    error: ProviderError | None = None
    # Calls that failed before the outcome (failover).
    failed_calls: list[ProviderCall] = field(default_factory=list)
    throttled: list[float] = field(default_factory=list)


# --- Attempts ---------------------------------------------------------------------------------------


def provider_attempts_record(*, calls: Sequence[tuple[Delivery, ProviderCall]]) -> None:
    """Count the calls in the metrics and write their ``ProviderAttempt`` rows in ONE INSERT from one JSON
    parameter (bulk_create's model instances and per-field compilation were ≈ 10 % of a send's CPU)."""
    rows = []
    for delivery, call in calls:
        metrics.PROVIDER_CALLS.labels(provider=call.provider, outcome=call.outcome).inc()
        metrics.PROVIDER_LATENCY.labels(provider=call.provider).observe(call.latency_ms / 1000)
        rows.append(
            {
                "provider": call.provider,
                "channel": delivery.channel,
                "delivery_id": str(delivery.pk),
                "outcome": call.outcome,
                "latency_ms": call.latency_ms,
                "error": call.error,
            }
        )
    if not rows:
        return
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


# --- Outcomes ---------------------------------------------------------------------------------------


def outcomes_write(*, attempts: Sequence[SendAttempt]) -> dict[str, str]:
    """Every provider call recorded and every sent delivery marked in one transaction; the rarer outcomes
    one by one after it. Returns each delivery's outcome by id."""
    outcomes: dict[str, str] = {}
    sent = [attempt for attempt in attempts if attempt.result is not None]
    calls: list[tuple[Delivery, ProviderCall]] = []
    for attempt in attempts:
        for call in attempt.failed_calls:
            logger.warning(
                "provider_send_failed",
                provider=call.provider,
                delivery_id=attempt.message.delivery_id,
                kind=call.outcome,
                error=call.error,
            )
            calls.append((attempt.delivery, call))
    for attempt in sent:
        calls.append((attempt.delivery, ProviderCall(attempt.provider, "sent", attempt.latency_ms)))
    if calls:
        with transaction.atomic():
            provider_attempts_record(calls=calls)
            _sent_write(
                sent=[
                    (attempt.delivery, attempt.provider, attempt.result)
                    for attempt in sent
                    if attempt.result is not None
                ]
            )
    for attempt in sent:
        outcomes[str(attempt.delivery.pk)] = "sent"
        metrics.OUTCOMES.labels(channel=attempt.delivery.channel, outcome="sent").inc()
    for attempt in attempts:
        if attempt.result is not None:
            continue
        delivery, error = attempt.delivery, attempt.error
        key = str(delivery.pk)
        if isinstance(error, PermanentProviderError):
            delivery_fail(delivery=delivery, provider=attempt.provider, error=error)
            outcomes[key] = "failed"
        elif isinstance(error, UnknownOutcomeError):
            delivery_mark_unknown(delivery=delivery, provider=attempt.provider, error=str(error))
            metrics.OUTCOMES.labels(channel=delivery.channel, outcome="unknown").inc()
            outcomes[key] = "unknown"
        elif error is None and attempt.throttled:
            # Only rate limits stood in the way: not a failure, so no attempt is spent and no backoff.
            at = timezone.now() + timedelta(seconds=min(attempt.throttled))
            with transaction.atomic():
                delivery_release(delivery=delivery, at=at, error="rate limited", spend_attempt=False)
            outcomes[key] = "throttled"
        else:
            if error is None:
                error = TransientProviderError(f"no provider configured for {delivery.channel}")
            outcomes[key] = _retry_or_fail(delivery=delivery, error=error)
    return outcomes


def _sent_write(*, sent: Sequence[tuple[Delivery, str, SendResult]]) -> None:
    """Mark sent deliveries and drop the push tokens their provider called dead; in the caller's
    transaction."""
    deliveries_mark_sent(
        sent=[
            DeliverySent(
                delivery=delivery,
                provider=provider,
                provider_message_id=result.provider_message_id,
                response=result.response,
            )
            for delivery, provider, result in sent
        ]
    )
    for delivery, _provider, result in sent:
        if result.dead_tokens:
            push_tokens_deactivate(profile_id=delivery.intervention.profile_id, tokens=result.dead_tokens)


@transaction.atomic
def delivery_fail(*, delivery: Delivery, provider: str, error: ProviderError) -> None:
    """``failed`` for good; a permanent error also suppresses the contact point it names."""
    delivery_mark_failed(
        delivery=delivery,
        provider=provider,
        error_kind=error.kind,
        error=str(error),
        response=error.response,
    )
    if isinstance(error, PermanentProviderError):
        contact_suppress(delivery=delivery, subject=error.subject)
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="failed").inc()


def delivery_cancel_before_send(*, delivery: Delivery, reason: str) -> str:
    delivery_cancel(delivery=delivery, reason=reason)
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="cancelled").inc()
    return "cancelled"


def delivery_release(
    *, delivery: Delivery, at: datetime, error: str, spend_attempt: bool, kind: str = ""
) -> None:
    """Hand the delivery back to the queue, due at ``at``; short delays ride a Celery countdown."""
    delivery_requeue(delivery=delivery, due_at=at, error=error, error_kind=kind, spend_attempt=spend_attempt)
    delay = (at - timezone.now()).total_seconds()
    if delay <= settings.NOTIFICATION_COUNTDOWN_MAX_SECONDS:
        channel = delivery.channel
        transaction.on_commit(
            lambda: delivery_publish(delivery_id=delivery.pk, channel=channel, countdown=max(delay, 0))
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
    # ``delivery`` was loaded after its claim: ``attempts`` counts this one.
    if delivery.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        delivery_fail(delivery=delivery, provider=delivery.provider, error=error)
        return "failed"
    at = timezone.now() + timedelta(seconds=retry_delay(attempts=delivery.attempts))
    delivery_release(delivery=delivery, at=at, error=str(error), spend_attempt=True, kind="transient")
    metrics.OUTCOMES.labels(channel=delivery.channel, outcome="retry").inc()
    return "retry"


# --- Settle by asking the provider ------------------------------------------------------------------


def delivery_settle(*, delivery: Delivery) -> str:
    """Ask the channel's providers whether an interrupted or unanswered send reached them; returns
    ``sent``, ``queued`` (it never left: published again) or ``unknown`` (for an operator)."""
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
            result = SendResult(
                provider_message_id=found.provider_message_id, response={**found.response, "settled": True}
            )
            with transaction.atomic():
                _sent_write(sent=[(delivery, provider.name, result)])
            metrics.OUTCOMES.labels(channel=delivery.channel, outcome="sent").inc()
            return "sent"
    with transaction.atomic():
        status = delivery_mark_unfound(delivery=delivery, never_left=all_can_tell)
        if status == Delivery.Status.QUEUED:
            channel = delivery.channel
            transaction.on_commit(lambda: delivery_publish(delivery_id=delivery.pk, channel=channel))
            return "queued"
    # Any other status: a late answer from the provider settled it meanwhile.
    return "unknown" if status == Delivery.Status.UNKNOWN else "sent"


# --- Contact points ---------------------------------------------------------------------------------


def contact_suppress(*, delivery: Delivery, subject: str) -> None:
    """A permanent error names a dead contact point: stop using it (address, number or push tokens)."""
    profile_id = delivery.intervention.profile_id
    if delivery.channel == "email":
        profile_email_suppress(profile_id=profile_id)
    elif delivery.channel == "sms" and subject == "phone":
        profile_phone_suppress(profile_id=profile_id)
    elif delivery.channel == "push" and subject:
        push_tokens_deactivate(profile_id=profile_id, tokens=subject.split(","))


@transaction.atomic
def delivery_failure_report(
    *, delivery: Delivery, reason: str, permanent: bool, response: dict[str, Any] | None = None
) -> bool:
    """A provider reports a message it had accepted as undeliverable (bounce, Twilio "undelivered").

    Permanent reports suppress the contact point like a permanent send error. Returns False when the
    delivery was not in a state a report can change (already failed, cancelled).
    """
    if not delivery_mark_undelivered(
        delivery=delivery, reason=reason, permanent=permanent, response=response or {}
    ):
        return False
    if permanent:
        contact_suppress(delivery=delivery, subject="phone" if delivery.channel == "sms" else "address")
    return True


# --- Data rights: a shopper's erasure ---------------------------------------------------------------


def provider_attempts_erase(*, delivery_ids: Sequence[Any]) -> int:
    """Blank the error text of the attempts made for ``delivery_ids`` (a provider's error often quotes
    the address or number); the attempts stay, they are the providers' health figures. Returns how many."""
    return ProviderAttempt.objects.filter(delivery_id__in=delivery_ids).exclude(error="").update(error="")
