from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from gateway.realtime import ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN
from gateway.tickets import MAX_ID_LENGTH


class WsTicketRequestSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    session_id = serializers.CharField(max_length=MAX_ID_LENGTH, allow_blank=True, required=False, default="")
    rooms = serializers.ListField(
        child=serializers.RegexField(ROOM_NAME_PATTERN, max_length=ROOM_NAME_MAX_LENGTH),
        max_length=settings.WS_MAX_ROOMS_PER_CONNECTION,
        required=False,
        default=list,
        help_text="Rooms the socket may join (join_room); names start with a WS_ROOM_PREFIXES entry.",
    )


class WsTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
