"""Shapes of templates, segments and campaigns for campaigns-as-code.

Serializers check shape only (types, lengths, choices); every rule (rules compile, templates render,
templates match their channel, campaigns can run) is enforced once, by campaigns.services.
A GET body can be edited and sent back with PUT: read-only fields (id, timestamps, sizes) are ignored.
"""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers import StrictSerializer
from campaigns.models import Campaign, Template
from personalization.models import CHANNELS, Channel


@extend_schema_field({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$"})
class LocalTimeField(serializers.TimeField):
    """A time of day with no UTC offset (OpenAPI's ``format: time`` would demand one)."""


INT_MAX = 2**31 - 1


def _seconds(**kwargs: object) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=INT_MAX, required=False, **kwargs)  # type: ignore[arg-type]


class TemplateLocalizationSerializer(StrictSerializer):
    locale = serializers.CharField(max_length=16)
    subject = serializers.CharField(max_length=300, allow_blank=True, required=False, default="")
    body_text = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    body_html = serializers.CharField(allow_blank=True, required=False, default="", trim_whitespace=False)
    cta_label = serializers.CharField(max_length=120, allow_blank=True, required=False, default="")
    cta_url = serializers.CharField(max_length=1000, allow_blank=True, required=False, default="")
    image_url = serializers.CharField(max_length=1000, allow_blank=True, required=False, default="")
    discount_code = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")


class TemplateSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    channel = serializers.ChoiceField(choices=Channel.choices)
    onsite_kind = serializers.ChoiceField(
        choices=Template.OnsiteKind.choices, allow_blank=True, required=False, help_text="On-site only"
    )
    default_locale = serializers.CharField(max_length=16, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    localizations = TemplateLocalizationSerializer(many=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class SegmentSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False)
    rules = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text='e.g. cart.total >= 50 and attributes.tier == "gold"',
    )
    estimated_size = serializers.IntegerField(read_only=True, allow_null=True)
    estimated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class VariantSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=120)
    weight = serializers.IntegerField(min_value=0, max_value=10000, required=False)
    is_control = serializers.BooleanField(required=False)
    onsite_template = serializers.IntegerField(
        source="onsite_template_id", allow_null=True, required=False, min_value=1, help_text="Template id"
    )
    email_template = serializers.IntegerField(
        source="email_template_id", allow_null=True, required=False, min_value=1, help_text="Template id"
    )
    sms_template = serializers.IntegerField(
        source="sms_template_id", allow_null=True, required=False, min_value=1, help_text="Template id"
    )
    push_template = serializers.IntegerField(
        source="push_template_id", allow_null=True, required=False, min_value=1, help_text="Template id"
    )


class CampaignSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False)
    kind = serializers.ChoiceField(choices=Campaign.Kind.choices, required=False)
    status = serializers.ChoiceField(
        choices=Campaign.Status.choices,
        required=False,
        help_text="On create: draft (default) or active. On update: a transition, applied after the edit.",
    )
    trigger = serializers.CharField(max_length=200, allow_blank=True, required=False)
    conditions = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)
    segment = serializers.IntegerField(source="segment_id", allow_null=True, required=False, min_value=1)
    delay_seconds = _seconds()
    require_open_cart = serializers.BooleanField(required=False)
    exit_events = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    channels = serializers.ListField(child=serializers.ChoiceField(choices=CHANNELS), required=False)
    channel_strategy = serializers.ChoiceField(choices=Campaign.ChannelStrategy.choices, required=False)
    priority = serializers.IntegerField(min_value=-INT_MAX, max_value=INT_MAX, required=False)
    frequency_cap_count = _seconds(help_text="0 means no cap")
    frequency_cap_window_seconds = _seconds()
    cooldown_seconds = _seconds()
    holdout_percent = serializers.DecimalField(max_digits=5, decimal_places=2, required=False)
    expiry_seconds = _seconds()
    use_bandit = serializers.BooleanField(required=False)
    bandit_goal = serializers.ChoiceField(choices=Campaign.BanditGoal.choices, required=False)
    conversion_goal = serializers.CharField(max_length=64, required=False)
    attribution_window_seconds = _seconds()
    minimum_detectable_effect = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("100"),
        required=False,
        help_text="Percentage points of conversion rate; tunes the always-valid test (default 1.00)",
    )
    send_at = serializers.DateTimeField(allow_null=True, required=False)
    send_local_time = LocalTimeField(
        allow_null=True, required=False, help_text="The shopper's wall-clock time, in their own time zone"
    )
    cron = serializers.CharField(
        max_length=100,
        allow_blank=True,
        required=False,
        help_text='Recurring runs: "minute hour day-of-month month day-of-week" (e.g. "0 9 * * 1"), read in '
        "schedule_timezone; empty for a one-off run at send_at",
    )
    schedule_timezone = serializers.CharField(
        max_length=64, required=False, help_text="IANA time zone of the cron expression (default UTC)"
    )
    starts_at = serializers.DateTimeField(allow_null=True, required=False)
    ends_at = serializers.DateTimeField(allow_null=True, required=False)
    variants = VariantSerializer(many=True, required=False)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
