from __future__ import annotations

import re
import zoneinfo
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers import LocalTimeField, StrictSerializer
from personalization.models import Profile

LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class ConsentSerializer(StrictSerializer):
    onsite = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)
    sms = serializers.BooleanField(required=False)
    push = serializers.BooleanField(required=False)


class QuietHoursSerializer(StrictSerializer):
    start = LocalTimeField(help_text="In the shopper's time zone, e.g. 22:00")
    end = LocalTimeField(help_text="May be earlier than start: the window wraps midnight")


# The names the server accepts (zoneinfo), so a client knows a time zone from a typo before it sends it.
TIME_ZONE_SCHEMA = {"type": "string", "enum": ["", *sorted(zoneinfo.available_timezones())]}


@extend_schema_field(TIME_ZONE_SCHEMA)
class TimeZoneNameField(serializers.CharField):
    """An IANA time zone name or blank; the schema lists the names (checked where the value is used)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_blank=True, max_length=64, **kwargs)


class PreferencesSerializer(StrictSerializer):
    """A shopper's preferences. On write every field is optional: what is sent changes, the rest stays."""

    user_id = serializers.CharField(read_only=True)
    consent = ConsentSerializer(required=False)
    quiet_hours = QuietHoursSerializer(required=False, allow_null=True)
    timezone = TimeZoneNameField(help_text="IANA name")
    locale = serializers.RegexField(
        LOCALE, required=False, allow_blank=True, max_length=16, trim_whitespace=False
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
        }
