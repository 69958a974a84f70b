"""Shopper preferences and data rights: preferences, erase (GDPR) and export, under ``/users/{user_id}``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.models import Scope
from core.errors import NotFoundError
from personalization import services
from personalization.api.serializers import PreferencesSerializer
from personalization.models import Profile


def _profile(user_id: str) -> Profile:
    profile = Profile.objects.filter(user_id=user_id).first()
    if profile is None:
        raise NotFoundError(f"No shopper with user_id {user_id!r}.")
    return profile


class UserPreferencesView(APIView):
    required_scopes = {Scope.USERS}

    @extend_schema(responses=PreferencesSerializer, summary="A shopper's consent, quiet hours, zone, locale")
    def get(self, request: Request, user_id: str) -> Response:
        return Response(PreferencesSerializer(_profile(user_id)).data)

    @extend_schema(
        request=PreferencesSerializer,
        responses=PreferencesSerializer,
        summary="Change preferences (fields not sent are kept; unknown shoppers are created)",
    )
    @idempotent
    def put(self, request: Request, user_id: str) -> Response:
        serializer = PreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        profile = services.profile_preferences_update(user_id=user_id, data=serializer.validated_data)
        return Response(PreferencesSerializer(profile).data)


class UserView(APIView):
    required_scopes = {Scope.USERS}

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Erased")},
        summary="Erase a shopper's personal data (GDPR); interventions stay, anonymised",
    )
    @idempotent
    def delete(self, request: Request, user_id: str) -> Response:
        services.profile_erase(user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserExportView(APIView):
    required_scopes = {Scope.USERS}

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Everything held about a shopper, as JSON")
    def get(self, request: Request, user_id: str) -> Response:
        return Response(services.profile_export(user_id=user_id))
