"""``POST /interventions`` (trigger one), ``GET /interventions`` and ``GET /interventions/{id}``; scope
``interventions``.

Thin: the serializers check shape, :mod:`delivery.triggers` decides, :mod:`interventions.selectors` reads.
"""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import idempotent
from api.models import ApiKey, Scope
from api.pagination import ApiPagination, PageSerializer
from api.serializers import StrictSerializer
from core.errors import NotFoundError
from delivery.events import MAX_ID_LENGTH
from delivery.selectors import intervention_detail
from delivery.triggers import intervention_send_direct, intervention_trigger
from interventions.models import Delivery, Intervention
from interventions.selectors import interventions_list
from personalization.api.serializers import TimeZoneNameField
from personalization.models import Channel
from tracking.models import TrackingEvent

# A context is an event body: small. Bounded so a caller cannot store megabytes per intervention.
MAX_CONTEXT_KEYS = 100


class ShopperSerializer(StrictSerializer):
    """The ``user`` object of a cart event (SPEC §3.1): creates or updates the shopper's profile."""

    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    first_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    locale = serializers.CharField(max_length=16, required=False, allow_blank=True)
    timezone = TimeZoneNameField()
    attributes = serializers.DictField(required=False)

    def validate_timezone(self, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise serializers.ValidationError("an IANA time zone such as Europe/Paris") from None
        return value


class InterventionCreateSerializer(StrictSerializer):
    """Either ``campaign_id`` (the campaign's rules decide) or ``template_id`` + ``channel`` (a direct
    send). ``event_id`` makes the call idempotent; without it, one is derived from the Idempotency-Key."""

    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    campaign_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    template_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    # The metaclass moves declared fields off the class, so this does not shadow Serializer.context.
    context = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]
    event_id = serializers.CharField(max_length=MAX_ID_LENGTH, required=False)
    user = ShopperSerializer(required=False)

    def validate_context(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_CONTEXT_KEYS:
            raise serializers.ValidationError(f"at most {MAX_CONTEXT_KEYS} keys")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        by_campaign = "campaign_id" in attrs
        direct = "template_id" in attrs or "channel" in attrs
        if by_campaign and direct:
            raise serializers.ValidationError(
                {"campaign_id": ["send either campaign_id, or template_id and channel, not both"]}
            )
        if not by_campaign and not direct:
            raise serializers.ValidationError({"campaign_id": ["campaign_id, or template_id and channel"]})
        if direct:
            missing = [name for name in ("template_id", "channel") if name not in attrs]
            if missing:
                raise serializers.ValidationError({name: ["required for a direct send"] for name in missing})
        return attrs


class _InterventionByCampaignSerializer(StrictSerializer):
    """Schema only: the campaign's rules decide (no template_id, no channel)."""

    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    campaign_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    context = serializers.DictField(required=False)  # type: ignore[assignment]
    event_id = serializers.CharField(max_length=MAX_ID_LENGTH, required=False)
    user = ShopperSerializer(required=False)


class _InterventionDirectSerializer(StrictSerializer):
    """Schema only: a direct send of a template on a channel (no campaign_id)."""

    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    template_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    channel = serializers.ChoiceField(choices=Channel.choices)
    context = serializers.DictField(required=False)  # type: ignore[assignment]
    event_id = serializers.CharField(max_length=MAX_ID_LENGTH, required=False)
    user = ShopperSerializer(required=False)


# What InterventionCreateSerializer.validate enforces, said in the schema: exactly one of the two shapes
# (both refuse unknown fields, so a body naming campaign_id and template_id matches neither).
INTERVENTION_CREATE_REQUEST = PolymorphicProxySerializer(
    component_name="InterventionCreate",
    serializers=[_InterventionByCampaignSerializer, _InterventionDirectSerializer],
    resource_type_field_name=None,
)


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "provider",
            "status",
            "attempts",
            "last_error",
            "error_kind",
            "provider_message_id",
            "next_attempt_at",
            "queued_at",
            "sending_at",
            "sent_at",
            "delivered_at",
            "failed_at",
            "resolved_at",
        ]
        read_only_fields = fields


class TrackingEventSerializer(serializers.ModelSerializer[TrackingEvent]):
    class Meta:
        model = TrackingEvent
        fields = ["event_id", "type", "source", "channel", "occurred_at", "received_at", "properties"]
        read_only_fields = fields


class InterventionSerializer(serializers.ModelSerializer[Intervention]):
    campaign_id = serializers.IntegerField(read_only=True)
    campaign_name = serializers.CharField(source="campaign.name", read_only=True)
    variant_id = serializers.IntegerField(read_only=True, allow_null=True)
    variant_name = serializers.SerializerMethodField()
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Intervention
        fields = [
            "id",
            "user_id",
            "campaign_id",
            "campaign_name",
            "variant_id",
            "variant_name",
            "trigger",
            "trigger_event_id",
            "status",
            "suppression_reason",
            "is_holdout",
            "channel",
            "content",
            "seq",
            "scheduled_for",
            "expires_at",
            "delivered_at",
            "created_at",
            "updated_at",
            "deliveries",
        ]
        read_only_fields = fields

    def get_variant_name(self, intervention: Intervention) -> str | None:
        return intervention.variant.name if intervention.variant is not None else None


class InterventionDetailSerializer(InterventionSerializer):
    events = TrackingEventSerializer(source="tracking_events", many=True, read_only=True)

    class Meta(InterventionSerializer.Meta):
        fields = [*InterventionSerializer.Meta.fields, "events"]
        read_only_fields = fields


class InterventionPageSerializer(serializers.Serializer):
    """The list envelope (api.pagination.ApiPagination), for the schema."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = InterventionSerializer(many=True)


class InterventionFiltersSerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH, required=False, help_text="Only this shopper's")
    campaign = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only this campaign's"
    )
    status = serializers.ChoiceField(
        choices=Intervention.Status.choices, required=False, help_text="Only in this status"
    )
    since = serializers.DateTimeField(required=False, help_text="Created at or after (ISO-8601)")


def default_event_id(request: Request) -> str:
    """The trigger event id of a call without one: derived from the Idempotency-Key (and the API key), so
    a retry after a lost answer decides nothing new even once the idempotency record is gone; else new."""
    key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip()
    api_key: Any = request.auth
    if key and isinstance(api_key, ApiKey):
        return f"api-{uuid.uuid5(uuid.NAMESPACE_URL, f'ie:{api_key.pk}:{key}')}"
    return f"api-{uuid.uuid4()}"


class InterventionListView(APIView):
    required_scopes = {Scope.INTERVENTIONS}

    @extend_schema(
        operation_id="interventions_list",
        # The serializers that validate the query string also document it, bounds and formats included.
        parameters=[InterventionFiltersSerializer, PageSerializer],
        responses={200: InterventionPageSerializer},
        summary="List interventions, newest first, with their deliveries",
    )
    def get(self, request: Request) -> Response:
        # A plain dict: from a QueryDict DRF would read a blank value (`?campaign=`) as absent.
        filters = InterventionFiltersSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        queryset = interventions_list(
            user_id=data.get("user_id"),
            campaign_id=data.get("campaign"),
            status=data.get("status"),
            since=data.get("since"),
        )
        paginator = ApiPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(InterventionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="interventions_create",
        request=INTERVENTION_CREATE_REQUEST,
        responses={201: InterventionSerializer, 200: InterventionSerializer},
        summary="Trigger an intervention for a shopper: by campaign (its rules decide) or template + channel",
        description=(
            "201 with the decision, suppressed ones included (status `suppressed`, `suppression_reason`); "
            "200 with the earlier decision when this `event_id` was decided before. 404 unknown campaign or "
            "template, 409 `campaign_not_active`, 422 `conditions_not_met`."
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = InterventionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        event_id = data.get("event_id") or default_event_id(request)
        if "campaign_id" in data:
            triggered = intervention_trigger(
                user_id=data["user_id"],
                campaign_id=data["campaign_id"],
                context=data["context"],
                event_id=event_id,
                user=data.get("user"),
            )
        else:
            triggered = intervention_send_direct(
                user_id=data["user_id"],
                template_id=data["template_id"],
                channel=data["channel"],
                context=data["context"],
                event_id=event_id,
                user=data.get("user"),
            )
        code = status.HTTP_201_CREATED if triggered.created else status.HTTP_200_OK
        return Response(InterventionSerializer(triggered.intervention).data, status=code)


class InterventionDetailView(APIView):
    required_scopes = {Scope.INTERVENTIONS}

    @extend_schema(
        operation_id="interventions_retrieve",
        responses={200: InterventionDetailSerializer},
        summary="One intervention with its deliveries and tracking events",
    )
    def get(self, request: Request, intervention_id: uuid.UUID) -> Response:
        intervention = intervention_detail(intervention_id=intervention_id)
        if intervention is None:
            raise NotFoundError("Intervention not found.", details={"intervention_id": str(intervention_id)})
        return Response(InterventionDetailSerializer(intervention).data)
