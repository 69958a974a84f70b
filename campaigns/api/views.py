"""Templates, segments and campaigns as code: CRUD under /api/v1/, each write through campaigns.services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from api.idempotency import idempotent
from api.models import ApiKey, Scope
from campaigns import selectors, services
from campaigns.api.serializers import (
    TEMPLATE_WRITE_REQUEST,
    CampaignCreateSerializer,
    CampaignSerializer,
    SegmentSerializer,
    TemplateSerializer,
)
from campaigns.models import Campaign, Template
from personalization import selectors as personalization_selectors
from personalization.models import Segment

# Ids are bigints: anything else (or longer) is a 404 from the router, never a database error.
ID_PATTERN = r"[0-9]{1,18}"


def actor_label(request: Request) -> str:
    api_key: Any = request.auth
    return f"api:{api_key.name}" if isinstance(api_key, ApiKey) else "api"


V = TypeVar("V", bound=type)


def list_filters(*names: str) -> Callable[[V], V]:
    """Let ``GET /<things>?name=…`` narrow a list by exact match, and document it in the schema; a
    campaigns-as-code tool finds the object it manages by its unique name."""
    parameters = [
        OpenApiParameter(name, str, description=f"Only those whose {name} is exactly this") for name in names
    ]

    def decorate(viewset: V) -> V:
        viewset.filter_names = names  # type: ignore[attr-defined]
        return extend_schema_view(list=extend_schema(parameters=parameters))(viewset)

    return decorate


class _Base(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    required_scopes = {Scope.CAMPAIGNS}
    lookup_value_regex = ID_PATTERN
    filter_names: tuple[str, ...] = ()  # set by @list_filters

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        wanted = {
            name: self.request.query_params[name]
            for name in self.filter_names
            if name in self.request.query_params
        }
        return queryset.filter(**wanted)

    def _validated(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer: BaseSerializer = self.get_serializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _answer(self, instance: Any, code: int = status.HTTP_200_OK) -> Response:
        # Read back through the selector, so the answer shows what is stored (localizations, variants).
        fresh = self.get_queryset().get(pk=instance.pk)
        return Response(self.get_serializer(fresh).data, status=code)


@list_filters("name", "channel")
class TemplateViewSet(_Base):
    serializer_class = TemplateSerializer

    def get_queryset(self) -> QuerySet[Template]:
        return selectors.template_list()

    @extend_schema(request=TEMPLATE_WRITE_REQUEST)
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._validated(request, partial=False)
        localizations = data.pop("localizations")
        template = services.template_create(
            data=data, localizations=localizations, actor_label=actor_label(request)
        )
        return self._answer(template, status.HTTP_201_CREATED)

    @extend_schema(request=TEMPLATE_WRITE_REQUEST)
    @idempotent
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=False)

    def _update(self, request: Request, *, partial: bool) -> Response:
        data = self._validated(request, partial=partial)
        localizations = data.pop("localizations", None)
        template = services.template_update(
            template=self.get_object(),
            data=data,
            localizations=localizations,
            actor_label=actor_label(request),
        )
        return self._answer(template)

    @idempotent
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=True)


@list_filters("name")
class SegmentViewSet(_Base):
    serializer_class = SegmentSerializer

    def get_queryset(self) -> QuerySet[Segment]:
        return selectors.segment_list()

    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._validated(request, partial=False)
        segment = services.segment_create(**data, actor_label=actor_label(request))
        return self._answer(segment, status.HTTP_201_CREATED)

    @idempotent
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=False)

    def _update(self, request: Request, *, partial: bool) -> Response:
        data = self._validated(request, partial=partial)
        segment = services.segment_update(segment=self.get_object(), **data, actor_label=actor_label(request))
        return self._answer(segment)

    @idempotent
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=True)

    @extend_schema(request=None, responses=SegmentSerializer, summary="Count the segment's shoppers now")
    @action(detail=True, methods=["post"])
    @idempotent
    def estimate(self, request: Request, pk: str) -> Response:
        segment = self.get_object()
        personalization_selectors.segment_estimate_size(segment=segment)
        return self._answer(segment)


@list_filters("name", "status", "kind")
class CampaignViewSet(_Base):
    serializer_class = CampaignSerializer

    def get_queryset(self) -> QuerySet[Campaign]:
        return selectors.campaign_list()

    @extend_schema(request=CampaignCreateSerializer)
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self._validated(request, partial=False)
        variants = data.pop("variants", [])
        campaign = services.campaign_create(data=data, variants=variants, actor_label=actor_label(request))
        return self._answer(campaign, status.HTTP_201_CREATED)

    @idempotent
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=False)

    def _update(self, request: Request, *, partial: bool) -> Response:
        data = self._validated(request, partial=partial)
        # PUT replaces the variants (none sent: none kept); PATCH keeps them unless it names them.
        variants = data.pop("variants", None if partial else [])
        campaign = services.campaign_update(
            campaign=self.get_object(), data=data, variants=variants, actor_label=actor_label(request)
        )
        return self._answer(campaign)

    @idempotent
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=True)

    def _transition(self, request: Request, to_status: str) -> Response:
        campaign = services.campaign_transition(
            campaign=self.get_object(), to_status=to_status, actor_label=actor_label(request)
        )
        return self._answer(campaign)

    @extend_schema(request=None, responses=CampaignSerializer, summary="draft|paused → active")
    @action(detail=True, methods=["post"])
    @idempotent
    def activate(self, request: Request, pk: str) -> Response:
        return self._transition(request, Campaign.Status.ACTIVE)

    @extend_schema(request=None, responses=CampaignSerializer, summary="active → paused")
    @action(detail=True, methods=["post"])
    @idempotent
    def pause(self, request: Request, pk: str) -> Response:
        return self._transition(request, Campaign.Status.PAUSED)

    @extend_schema(request=None, responses=CampaignSerializer, summary="active|paused → completed")
    @action(detail=True, methods=["post"])
    @idempotent
    def complete(self, request: Request, pk: str) -> Response:
        return self._transition(request, Campaign.Status.COMPLETED)

    @extend_schema(request=None, responses=CampaignSerializer, summary="draft|paused|completed → archived")
    @action(detail=True, methods=["post"])
    @idempotent
    def archive(self, request: Request, pk: str) -> Response:
        return self._transition(request, Campaign.Status.ARCHIVED)

    @extend_schema(
        request=None, responses={201: CampaignSerializer}, summary="A draft copy with its variants"
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def duplicate(self, request: Request, pk: str) -> Response:
        copy = services.campaign_duplicate(campaign=self.get_object(), actor_label=actor_label(request))
        return self._answer(copy, status.HTTP_201_CREATED)
