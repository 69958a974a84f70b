from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers import StrictSerializer
from gateway.realtime import ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN
from gateway.tickets import MAX_ID_LENGTH


def _room_prefixes_pattern() -> str:
    # gateway.realtime.room_allowed: "x." is a namespace (something must follow), "x" an exact name.
    names = [
        re.escape(prefix) + (".+" if prefix.endswith(".") else "$") for prefix in settings.WS_ROOM_PREFIXES
    ]
    return "^(" + "|".join(names) + ")"


ROOM_SCHEMA = {
    "type": "string",
    "maxLength": ROOM_NAME_MAX_LENGTH,
    "allOf": [{"pattern": ROOM_NAME_PATTERN}, {"pattern": _room_prefixes_pattern()}],
}


class WsTicketRequestSerializer(StrictSerializer):
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    session_id = serializers.CharField(max_length=MAX_ID_LENGTH, allow_blank=True, required=False, default="")
    rooms = serializers.ListField(
        child=extend_schema_field(ROOM_SCHEMA)(  # type: ignore[type-var]
            serializers.RegexField(ROOM_NAME_PATTERN, max_length=ROOM_NAME_MAX_LENGTH)
        ),
        max_length=settings.WS_MAX_ROOMS_PER_CONNECTION,
        required=False,
        default=list,
        help_text="Rooms the socket may join (join_room); names start with a WS_ROOM_PREFIXES entry.",
    )


class WsTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
