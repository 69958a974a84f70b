"""Interventions and their deliveries: what was decided for a shopper, and each channel's send ledger.

This app is the one owner of both tables: only ``interventions.services`` changes them.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q, Value

from campaigns.models import Campaign, Variant
from personalization.models import Channel, Profile


class Intervention(models.Model):
    """One decision for one shopper: unique per (campaign, trigger event)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        PENDING = "pending", "Pending delivery"
        DELIVERED = "delivered", "Delivered"
        SUPPRESSED = "suppressed", "Suppressed"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Looked up by campaign through the (campaign, trigger event) key and the report index: no index of
    # its own (each index is written by every decision of the consumer's hot path).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="interventions", db_index=False
    )
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="interventions")
    user_id = models.CharField(max_length=128)
    session_id = models.CharField(max_length=128, blank=True)
    cart_id = models.CharField(max_length=128, blank=True)
    trigger_event_id = models.CharField(max_length=128)
    trigger = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    suppression_reason = models.CharField(max_length=32, blank=True)
    is_holdout = models.BooleanField(default=False)
    channel = models.CharField(max_length=16, choices=Channel.choices, blank=True)
    content = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    # How likely this decision was (so any policy can be evaluated offline): the probability of its
    # variant, of its channel and of the holdout, and why the channel was chosen (delivery.decisions).
    # Also a database default: rows written by raw SQL that predates the column still insert.
    propensity = models.JSONField(
        default=dict, db_default=Value({}, output_field=models.JSONField()), blank=True
    )
    seq = models.PositiveBigIntegerField(null=True, blank=True, help_text="Per-user on-site sequence number")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The table kept its name when the model moved here from campaigns.
        db_table = "campaigns_intervention"
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "trigger_event_id"], name="intervention_once_per_event"
            ),
            models.UniqueConstraint(
                fields=["user_id", "seq"], condition=Q(seq__isnull=False), name="intervention_user_seq_unique"
            ),
            models.CheckConstraint(
                condition=~Q(status="suppressed") | ~Q(suppression_reason=""),
                name="intervention_suppressed_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["user_id", "status"], name="intervention_user_status_idx"),
            models.Index(fields=["campaign", "variant", "created_at"], name="intervention_report_idx"),
            models.Index(
                fields=["scheduled_for"], name="intervention_due_idx", condition=Q(status="scheduled")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.user_id}:{self.status}"


class Delivery(models.Model):
    """The send ledger for one channel of one intervention.

    ``queued → sending → sent → delivered`` or ``failed``; ``unknown`` when a send may have reached the
    provider but we did not hear back — settled by asking the provider, never by sending again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Looked up through the (intervention, channel) key: no index of its own.
    intervention = models.ForeignKey(
        Intervention, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    provider = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=16, blank=True, help_text="transient or permanent")
    provider_message_id = models.CharField(max_length=200, blank=True)
    provider_response = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "campaigns_delivery"
        verbose_name_plural = "deliveries"
        # Sending again reaches the shopper again: granted on its own, not with "change delivery".
        permissions = [("retry_delivery", "Can retry a failed or unknown delivery (sends it again)")]
        constraints = [
            models.UniqueConstraint(fields=["intervention", "channel"], name="delivery_once_per_channel"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due_idx"),
            models.Index(fields=["provider", "status"], name="delivery_provider_status_idx"),
            # Webhooks look deliveries up by the provider's id, which a queued delivery does not have yet.
            models.Index(
                fields=["provider_message_id"],
                name="delivery_provider_msg_idx",
                condition=~Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel}:{self.status}"
