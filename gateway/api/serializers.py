from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers import StrictSerializer
from gateway.realtime import ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN
from gateway.tickets import MAX_ID_LENGTH


def _room_schema() -> dict[str, object]:
    """gateway.realtime.room_allowed as one pattern: a safe room name that is an allowed exact name
    ("broadcast") or something after an allowed namespace ("campaign." then at least one character)."""
    names = []
    for prefix in settings.WS_ROOM_PREFIXES:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", prefix) or len(prefix) > ROOM_NAME_MAX_LENGTH:
            continue  # no safe room name starts so: the prefix admits nothing
        if prefix.endswith("."):
            names.append(f"{re.escape(prefix)}[a-z0-9._-]{{1,{ROOM_NAME_MAX_LENGTH - len(prefix)}}}")
        else:
            names.append(re.escape(prefix))
    pattern = "^(" + "|".join(names) + ")$" if names else "^(?!)$"
    return {"type": "string", "maxLength": ROOM_NAME_MAX_LENGTH, "pattern": pattern}


@extend_schema_field(_room_schema())
class RoomNameField(serializers.RegexField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ROOM_NAME_PATTERN, max_length=ROOM_NAME_MAX_LENGTH, trim_whitespace=False, **kwargs)


class WsTicketRequestSerializer(StrictSerializer):
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    session_id = serializers.CharField(max_length=MAX_ID_LENGTH, allow_blank=True, required=False, default="")
    rooms = serializers.ListField(
        child=RoomNameField(),
        max_length=settings.WS_MAX_ROOMS_PER_CONNECTION,
        required=False,
        default=list,
        help_text="Rooms the socket may join (join_room); names start with a WS_ROOM_PREFIXES entry.",
    )


class WsTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
