from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from personalization.models import Channel, Segment


class Template(models.Model):
    """Marketer-authored content for one channel; rendered in a sandbox (personalization.rendering)."""

    class OnsiteKind(models.TextChoices):
        MODAL = "modal", "Modal"
        BANNER = "banner", "Banner"
        TOAST = "toast", "Toast"

    name = models.CharField(max_length=200, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    onsite_kind = models.CharField(max_length=16, choices=OnsiteKind.choices, blank=True)
    default_locale = models.CharField(max_length=16, default="en")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(channel="onsite", onsite_kind__in=["modal", "banner", "toast"])
                | (~Q(channel="onsite") & Q(onsite_kind="")),
                name="template_onsite_kind_matches_channel",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel})"


class TemplateLocalization(models.Model):
    """One locale's content. Lookup falls back fr-FR → fr → the template's default locale."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="localizations")
    locale = models.CharField(max_length=16)
    subject = models.CharField(max_length=300, blank=True, help_text="Email subject, push or on-site title")
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True, help_text="Email only")
    cta_label = models.CharField(max_length=120, blank=True)
    cta_url = models.CharField(max_length=1000, blank=True)
    image_url = models.CharField(max_length=1000, blank=True)
    discount_code = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["template", "locale"], name="template_locale_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name} [{self.locale}]"


class Campaign(models.Model):
    class Kind(models.TextChoices):
        TRIGGERED = "triggered", "Triggered by events"
        SCHEDULED = "scheduled", "Scheduled send to a segment"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        ARCHIVED = "archived", "Archived"

    class ChannelStrategy(models.TextChoices):
        FIXED = "fixed", "Fixed: the first channel only"
        FIRST_AVAILABLE = "first_available", "First available in order"
        OPTIMIZED = "optimized", "Optimised per shopper"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRIGGERED)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)

    trigger = models.CharField(
        max_length=200,
        blank=True,
        help_text="Event type or prediction.<model>, e.g. prediction.cart_abandonment",
    )
    conditions = models.TextField(blank=True, help_text="Rule over the event, e.g. score >= 0.7")
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    delay_seconds = models.PositiveIntegerField(default=0)
    require_open_cart = models.BooleanField(
        default=False, help_text="After the delay, send only if the cart has not been checked out"
    )
    exit_events = models.JSONField(default=list, blank=True, help_text='e.g. ["checkout_completed"]')

    channels = models.JSONField(default=list, help_text='Ordered, e.g. ["onsite", "email"]')
    channel_strategy = models.CharField(
        max_length=16, choices=ChannelStrategy.choices, default=ChannelStrategy.FIRST_AVAILABLE
    )
    priority = models.IntegerField(default=0, help_text="Higher wins when several campaigns match one event")
    frequency_cap_count = models.PositiveIntegerField(default=0, help_text="0 means no cap")
    frequency_cap_window_seconds = models.PositiveIntegerField(default=86400)
    cooldown_seconds = models.PositiveIntegerField(default=0)
    holdout_percent = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    expiry_seconds = models.PositiveIntegerField(
        default=1800, help_text="An intervention not shown by then expires"
    )
    use_bandit = models.BooleanField(
        default=False, help_text="Allocate traffic to variants by Thompson sampling"
    )

    class BanditGoal(models.TextChoices):
        CONVERSION = "conversion", "Conversion (an attributed order)"
        CLICK = "click", "Click (when conversions are too rare to learn from)"

    bandit_goal = models.CharField(
        max_length=16,
        choices=BanditGoal.choices,
        default=BanditGoal.CONVERSION,
        help_text="What the bandit rewards a variant for",
    )

    conversion_goal = models.CharField(max_length=64, default="checkout_completed")
    minimum_detectable_effect = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
        help_text="The smallest lift in conversion rate worth acting on, in percentage points: the "
        "always-valid test is tuned to it, and the results page shows the power reached for it",
    )
    attribution_window_seconds = models.PositiveIntegerField(default=86400)

    # Scheduled campaigns (docs/campaigns.md): a one-off run at ``send_at``, or a run at every tick of
    # ``cron`` (read in ``schedule_timezone``); beat holds the schedule (django-celery-beat rows kept in
    # step by campaigns.services). With ``send_local_time`` each run rolls across the shoppers' zones: a
    # shopper is sent the message at the first ``send_local_time`` of their own clock after the run starts.
    send_at = models.DateTimeField(null=True, blank=True, help_text="One-off: when the run starts")
    send_local_time = models.TimeField(
        null=True, blank=True, help_text="Each shopper's wall-clock time; empty sends at the run's start"
    )
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text='Recurring: "minute hour day-of-month month day-of-week", e.g. "0 9 * * 1" (Mondays '
        "09:00); empty for a one-off",
    )
    schedule_timezone = models.CharField(
        max_length=64, default="UTC", help_text="The time zone the cron expression is read in"
    )

    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(holdout_percent__gte=0, holdout_percent__lte=100), name="campaign_holdout_range"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True)
                | Q(starts_at__isnull=True)
                | Q(ends_at__gt=models.F("starts_at")),
                name="campaign_ends_after_start",
            ),
            models.CheckConstraint(
                condition=~Q(kind="triggered") | ~Q(trigger="") | Q(status="draft"),
                name="campaign_triggered_has_trigger",
            ),
        ]
        indexes = [models.Index(fields=["status", "kind"], name="campaign_status_kind_idx")]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=120)
    weight = models.PositiveIntegerField(default=1)
    is_control = models.BooleanField(default=False)
    onsite_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"channel": "onsite"},
    )
    email_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"channel": "email"},
    )
    sms_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"channel": "sms"},
    )
    push_template = models.ForeignKey(
        Template,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"channel": "push"},
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="variant_name_unique"),
            models.CheckConstraint(condition=Q(weight__lte=10000), name="variant_weight_range"),
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(is_control=True), name="variant_one_control"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign.name} / {self.name}"

    def template_for(self, channel: str) -> Template | None:
        template: Template | None = getattr(self, f"{channel}_template", None)
        return template


class AuditEntry(models.Model):
    """Who changed what in the back office (admin or API), with the field-level changes."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="User name or API key name")
    action = models.CharField(max_length=64)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_repr}"
