from __future__ import annotations

from django.contrib.postgres.indexes import HashIndex
from django.db import models

CHANNELS = ("onsite", "email", "sms", "push")


class Channel(models.TextChoices):
    ONSITE = "onsite", "On-site"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"


class Profile(models.Model):
    """A shopper, keyed by the external ``user_id`` that every other service uses."""

    user_id = models.CharField(max_length=128, unique=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    first_name = models.CharField(max_length=120, blank=True)
    locale = models.CharField(max_length=16, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    consent_onsite = models.BooleanField(default=True)
    consent_email = models.BooleanField(default=True)
    consent_sms = models.BooleanField(default=False)
    consent_push = models.BooleanField(default=True)
    # Set when a provider reports the address or number as permanently undeliverable.
    email_suppressed_at = models.DateTimeField(null=True, blank=True)
    phone_suppressed_at = models.DateTimeField(null=True, blank=True)
    # Quiet hours in the shopper's own time zone; a window may wrap midnight (22:00-08:00).
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)

    # Behaviour, kept current by the event stream, so segments can be evaluated as a query.
    last_cart = models.JSONField(default=dict, blank=True)
    orders_count = models.PositiveIntegerField(default=0)
    total_revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    # Per channel: {"email": {"sent": 3, "opened": 1, "clicked": 0}, ...}, for channel optimisation.
    engagement = models.JSONField(default=dict, blank=True)
    # Per-user sequence of on-site interventions, so a reconnecting browser can resume after the last one.
    onsite_seq = models.PositiveBigIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    # No index on ``last_seen_at`` or any other column the decision path writes: every batch updates its
    # shoppers' rows, and an update that changes no indexed column is a HOT update (no index entries, the
    # old version pruned in place; the table keeps room on each page for it, see migration 0002).

    def __str__(self) -> str:
        return self.user_id

    def has_consent(self, channel: str) -> bool:
        return bool(getattr(self, f"consent_{channel}", False))


class PushToken(models.Model):
    class Platform(models.TextChoices):
        ANDROID = "android", "Android"
        IOS = "ios", "iOS"
        WEB = "web", "Web"

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="push_tokens")
    # FCM/APNs: the registration token; web: the PushSubscription's endpoint URL.
    token = models.CharField(max_length=4096)
    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.ANDROID)
    app_id = models.CharField(
        max_length=200, blank=True, help_text="The app (bundle id, web origin) that registered it"
    )
    # Web Push only: the PushSubscription's ``keys`` ({"p256dh", "auth"}, base64url), encrypted to.
    keys = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    invalidated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile", "token"], name="push_token_unique")]
        # A device registering for another shopper leaves the one before (looked up by token alone); a hash
        # index, because a web endpoint may exceed what a B-tree entry holds.
        indexes = [HashIndex(fields=["token"], name="push_token_token_idx")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.token[:12]}…"


class Segment(models.Model):
    """A rule over profile attributes, cart and behaviour (see docs/rules.md for the language)."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    rules = models.TextField(help_text='e.g. cart.total >= 50 and attributes.tier == "gold"')
    estimated_size = models.PositiveIntegerField(null=True, blank=True)
    estimated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name
