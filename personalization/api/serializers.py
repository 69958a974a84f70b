from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from api.serializers import StrictSerializer
from personalization.models import Profile, PushToken
from personalization.services import E164

LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class ConsentSerializer(StrictSerializer):
    onsite = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)
    push = serializers.BooleanField(required=False)


class QuietHoursSerializer(StrictSerializer):
    start = serializers.TimeField(help_text="In the shopper's time zone, e.g. 22:00")
    end = serializers.TimeField(help_text="May be earlier than start: the window wraps midnight")


class PreferencesSerializer(StrictSerializer):
    """A shopper's preferences. On write every field is optional: what is sent changes, the rest stays."""

    user_id = serializers.CharField(read_only=True)
    consent = ConsentSerializer(required=False)
    quiet_hours = QuietHoursSerializer(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="IANA name")
    locale = serializers.RegexField(LOCALE, required=False, allow_blank=True, max_length=16)
    email = serializers.EmailField(
        required=False, allow_blank=True, max_length=254, help_text='"" removes it'
    )
    phone = serializers.RegexField(
        E164,
        required=False,
        allow_blank=True,
        max_length=16,
        help_text='E.164, e.g. +33612345678; "" removes it',
        error_messages={"invalid": "Not an E.164 number (a + then up to 15 digits, e.g. +33612345678)."},
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        profile: Profile = instance
        quiet_hours = None
        if profile.quiet_hours_start is not None and profile.quiet_hours_end is not None:
            quiet_hours = {
                "start": profile.quiet_hours_start.strftime("%H:%M"),
                "end": profile.quiet_hours_end.strftime("%H:%M"),
            }
        return {
            "user_id": profile.user_id,
            "consent": {channel: profile.has_consent(channel) for channel in ConsentSerializer().fields},
            "quiet_hours": quiet_hours,
            "timezone": profile.timezone,
            "locale": profile.locale,
            "email": profile.email,
            "phone": profile.phone,
        }


class PushSubscriptionKeysSerializer(StrictSerializer):
    p256dh = serializers.CharField(max_length=200, help_text="The browser's P-256 public key, base64url")
    auth = serializers.CharField(max_length=100, help_text="The 16-byte auth secret, base64url")


class PushSubscriptionSerializer(StrictSerializer):
    """A browser's ``PushSubscription.toJSON()``, as sent by the JS client."""

    endpoint = serializers.URLField(max_length=4096)
    expirationTime = serializers.IntegerField(required=False, allow_null=True)
    keys = PushSubscriptionKeysSerializer()


class PushTokenSerializer(StrictSerializer):
    """A device: ``token`` for android and ios (the FCM registration token); ``subscription`` for web."""

    platform = serializers.ChoiceField(choices=PushToken.Platform.choices)
    token = serializers.CharField(required=False, max_length=4096, help_text="android, ios: required")
    subscription = PushSubscriptionSerializer(required=False, write_only=True, help_text="web: required")
    app_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    is_active = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["platform"] == PushToken.Platform.WEB:
            subscription = attrs.pop("subscription", None)
            if subscription is None:
                raise serializers.ValidationError({"subscription": ["Required for web."]})
            if attrs.get("token") not in (None, subscription["endpoint"]):
                raise serializers.ValidationError({"token": ["Send the subscription alone for web."]})
            attrs["token"] = subscription["endpoint"]
            attrs["keys"] = dict(subscription["keys"])
        else:
            if "subscription" in attrs:
                raise serializers.ValidationError({"subscription": ["Only for web."]})
            if not attrs.get("token"):
                raise serializers.ValidationError({"token": ["Required for android and ios."]})
        return attrs


# Email and SMS have their own ways out (the one-click link, STOP); preferences turn off any channel.
OPT_OUT_CHANNELS = [("push", "Push")]


# The two shapes a registration takes, for the OpenAPI schema (one of, by ``platform``): what
# PushTokenSerializer.validate enforces, stated so a generated client never sends the wrong one.
NATIVE_PLATFORMS = [("android", "Android"), ("ios", "iOS")]
WEB_PLATFORMS = [("web", "Web")]


class NativePushTokenSerializer(StrictSerializer):
    platform = serializers.ChoiceField(choices=NATIVE_PLATFORMS)
    token = serializers.CharField(max_length=4096, help_text="The FCM registration token")
    app_id = serializers.CharField(required=False, allow_blank=True, max_length=200)


class WebPushTokenSerializer(StrictSerializer):
    platform = serializers.ChoiceField(choices=WEB_PLATFORMS)
    subscription = PushSubscriptionSerializer()
    app_id = serializers.CharField(required=False, allow_blank=True, max_length=200)


class OptOutSerializer(StrictSerializer):
    channel = serializers.ChoiceField(
        choices=OPT_OUT_CHANNELS, help_text="The channel the shopper turned off"
    )
