from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from campaigns.models import Campaign, Variant
from interventions.models import Delivery, Intervention


class TrackingEvent(models.Model):
    """What happened to an intervention: delivered, displayed, opened, clicked, dismissed…"""

    class Type(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        DISPLAYED = "displayed", "Displayed"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        DISMISSED = "dismissed", "Dismissed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    class Source(models.TextChoices):
        WEBSOCKET = "websocket", "WebSocket"
        API = "api", "API"
        PIXEL = "pixel", "Open pixel"
        LINK = "link", "Click link"
        WEBHOOK = "webhook", "Provider webhook"

    event_id = models.CharField(max_length=128, unique=True, default=uuid.uuid4)
    type = models.CharField(max_length=16, choices=Type.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    intervention = models.ForeignKey(
        Intervention, null=True, blank=True, on_delete=models.CASCADE, related_name="tracking_events"
    )
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user_id = models.CharField(max_length=128)
    channel = models.CharField(max_length=16, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["intervention", "type"], name="tracking_intervention_type_idx"),
            models.Index(fields=["user_id", "occurred_at"], name="tracking_user_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.intervention_id}"


class Conversion(models.Model):
    """An order, attributed to the intervention that earned it, or to none (organic / holdout)."""

    class Model(models.TextChoices):
        LAST_TOUCH = "last_touch", "Last touch"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.CharField(max_length=128)
    user_id = models.CharField(max_length=128)
    revenue = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    occurred_at = models.DateTimeField()
    attribution_model = models.CharField(max_length=16, choices=Model.choices, default=Model.LAST_TOUCH)
    intervention = models.ForeignKey(
        Intervention, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversions"
    )
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=16, blank=True)
    is_holdout = models.BooleanField(default=False)
    trigger_event_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order_id", "attribution_model"], name="conversion_once_per_order"
            ),
            models.CheckConstraint(condition=Q(revenue__gte=0), name="conversion_revenue_non_negative"),
        ]
        indexes = [models.Index(fields=["campaign", "variant"], name="conversion_campaign_idx")]

    def __str__(self) -> str:
        return f"{self.order_id} {self.revenue} {self.currency}"
