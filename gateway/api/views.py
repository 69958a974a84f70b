"""``POST /ws-tickets``: a trusted backend gets a ticket its shopper's browser opens ``/ws`` with."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.models import Scope
from gateway.api.serializers import WsTicketRequestSerializer, WsTicketSerializer
from gateway.tickets import ws_ticket_issue


class WsTicketView(APIView):
    required_scopes = {Scope.WS_TICKETS}

    # Not @idempotent on purpose: issuing a ticket changes nothing a retry could duplicate, and an
    # idempotency record would keep a credential at rest; a retry simply gets a fresh ticket.
    @extend_schema(
        request=WsTicketRequestSerializer,
        responses={201: WsTicketSerializer},
        summary="Issue a short-lived, single-use WebSocket ticket bound to a user and session",
    )
    def post(self, request: Request) -> Response:
        serializer = WsTicketRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ticket, expires_at = ws_ticket_issue(
            user_id=serializer.validated_data["user_id"],
            session_id=serializer.validated_data["session_id"],
            rooms=serializer.validated_data["rooms"],
        )
        body = WsTicketSerializer({"ticket": ticket, "expires_at": expires_at}).data
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response
