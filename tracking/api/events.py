"""``POST /events``: tracking events in batches of up to 1,000; scope ``events``.

All or nothing: every item is checked (shape, then that its intervention exists) before anything is
written, and an invalid batch answers 400 (404 for unknown interventions) with the errors by item index.
A valid batch is recorded in one transaction with bulk writes by ``tracking.services.tracking_events_record``;
an ``event_id`` seen before is counted as a duplicate and has no second effect. Routes: tracking/api/urls.py.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.models import Scope
from api.serializers import StrictSerializer
from core.errors import ApplicationError, NotFoundError
from interventions.selectors import interventions_existing
from personalization.models import Channel
from tracking.models import TrackingEvent
from tracking.services import tracking_events_record

MAX_BATCH_SIZE = 1000
# What a shop or app reports; bounces, complaints and unsubscribes come from provider webhooks.
API_EVENT_TYPES = (
    TrackingEvent.Type.DELIVERED,
    TrackingEvent.Type.DISPLAYED,
    TrackingEvent.Type.OPENED,
    TrackingEvent.Type.CLICKED,
    TrackingEvent.Type.DISMISSED,
)
MAX_PROPERTIES = 50


class TrackingEventInSerializer(StrictSerializer):
    event_id = serializers.CharField(
        max_length=128,
        required=False,
        help_text="Your id for the event; a second event with it is a duplicate",
    )
    intervention_id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=[(t.value, t.label) for t in API_EVENT_TYPES])
    occurred_at = serializers.DateTimeField(required=False, help_text="Defaults to the time received")
    channel = serializers.ChoiceField(
        choices=Channel.choices, required=False, help_text="Defaults to the intervention's channel"
    )
    properties = serializers.DictField(required=False)

    def validate_properties(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_PROPERTIES:
            raise serializers.ValidationError(f"at most {MAX_PROPERTIES} keys")
        return value


class TrackingEventsBatchSerializer(StrictSerializer):
    # max_length documents maxItems in the schema; the view refuses a longer batch first, with its own code.
    events = TrackingEventInSerializer(  # type: ignore[call-arg]  # many=True passes it to ListSerializer
        many=True, allow_empty=False, max_length=MAX_BATCH_SIZE
    )


class TrackingEventsResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events recorded now")
    duplicates = serializers.IntegerField(help_text="Events whose event_id was recorded before (no effect)")


def _by_index(errors: Any) -> Any:
    """DRF reports a list's errors as a list with ``{}`` for each valid item; keep only the failing
    indexes, so one bad item of 1,000 is one entry."""
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        return {str(index): item for index, item in enumerate(errors) if item}
    return errors


class TrackingEventsView(APIView):
    required_scopes = {Scope.EVENTS}

    @extend_schema(
        operation_id="events_create",
        request=TrackingEventsBatchSerializer,
        responses={200: TrackingEventsResultSerializer},
        summary="Record tracking events (displayed, opened, clicked, dismissed, delivered) in one batch",
        description=(
            f"Up to {MAX_BATCH_SIZE} events; more is 413 `batch_too_large`. Nothing is written unless every "
            "item is valid (400) and names a known intervention (404 `unknown_intervention`), with "
            "`details.events.<index>`."
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        events = request.data.get("events") if isinstance(request.data, dict) else None
        if isinstance(events, list) and len(events) > MAX_BATCH_SIZE:
            # Refused before validating a thousand items one by one.
            raise ApplicationError(
                f"At most {MAX_BATCH_SIZE} events per request; split the batch.",
                code="batch_too_large",
                status_code=413,
                details={"max_events": MAX_BATCH_SIZE, "events": len(events)},
            )
        serializer = TrackingEventsBatchSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict) and "events" in exc.detail:
                exc.detail["events"] = _by_index(exc.detail["events"])
            raise
        items = serializer.validated_data["events"]

        known = interventions_existing(intervention_ids=[item["intervention_id"] for item in items])
        unknown = {
            str(index): {"intervention_id": ["Unknown intervention."]}
            for index, item in enumerate(items)
            if item["intervention_id"] not in known
        }
        if unknown:
            raise NotFoundError(
                f"{len(unknown)} event(s) name an unknown intervention; nothing was recorded.",
                code="unknown_intervention",
                details={"events": unknown},
            )

        accepted = tracking_events_record(events=[{**item, "source": "api"} for item in items])
        return Response({"accepted": accepted, "duplicates": len(items) - accepted})
