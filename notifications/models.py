from __future__ import annotations

from django.db import models


class ProviderAttempt(models.Model):
    """One call to one provider: what the health view's success rate, latency and last errors are made of.

    A delivery that failed over has one row per provider it tried, so a flapping primary shows up even
    when every message eventually went out through the secondary.
    """

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        TRANSIENT = "transient", "Transient error"
        PERMANENT = "permanent", "Permanent error"
        UNKNOWN = "unknown", "No answer"

    provider = models.CharField(max_length=64)
    channel = models.CharField(max_length=16)
    delivery_id = models.UUIDField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    latency_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["provider", "created_at"], name="provider_attempt_recent_idx")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.outcome}"


class ProviderCallback(models.Model):
    """A provider callback already processed; its unique key makes a replay write nothing."""

    key = models.CharField(max_length=300, unique=True)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
