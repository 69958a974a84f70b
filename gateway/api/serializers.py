from __future__ import annotations

from rest_framework import serializers

from gateway.tickets import MAX_ID_LENGTH


class WsTicketRequestSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    session_id = serializers.CharField(max_length=MAX_ID_LENGTH, allow_blank=True, required=False, default="")


class WsTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
