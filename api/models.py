from __future__ import annotations

from django.conf import settings
from django.db import models


class Scope(models.TextChoices):
    INTERVENTIONS = "interventions", "Trigger and read interventions"
    EVENTS = "events", "Send tracking events"
    USERS = "users", "Read and change shopper preferences and data"
    PUSH_TOKENS = "push_tokens", "Register and remove shoppers' devices, record their push opt-outs"
    CAMPAIGNS = "campaigns", "Manage templates, segments and campaigns"
    REPORTS = "reports", "Read reports and exports"
    WS_TICKETS = "ws_tickets", "Issue WebSocket tickets"
    WEBHOOKS = "webhooks", "Send provider receipts"
    METRICS = "metrics", "Read metrics, socket statistics and readiness details"


class ApiKey(models.Model):
    """A service credential. Only a hash is stored; the key is shown once when created."""

    name = models.CharField(max_length=120, unique=True)
    prefix = models.CharField(max_length=16, unique=True, help_text="First characters, to recognise a key")
    hashed_key = models.CharField(max_length=128, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The stored answer to a write sent with an ``Idempotency-Key``, replayed for a repeat."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
