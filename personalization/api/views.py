"""Shopper preferences, devices and data rights under ``/users/{user_id}``: preferences (consent, contact
points), push tokens and opt-outs, erase (GDPR) and export."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.idempotency import idempotent
from api.models import ApiKey, Scope
from core.errors import NotFoundError
from personalization import services
from personalization.api.serializers import (
    NativePushTokenSerializer,
    OptOutSerializer,
    PreferencesSerializer,
    PushTokenSerializer,
    WebPushTokenSerializer,
)
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
        profile = services.profile_preferences_update(
            user_id=user_id, data=serializer.validated_data, actor_label=_actor_label(request)
        )
        return Response(PreferencesSerializer(profile).data)


def _actor_label(request: Request) -> str:
    """Who made a change through the API, for the audit log: the API key's name."""
    return f"API key {request.auth.name}" if isinstance(request.auth, ApiKey) else "API"


class UserPushTokensView(APIView):
    required_scopes = {Scope.PUSH_TOKENS}

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="PushTokenRegistration",
            serializers={
                "android": NativePushTokenSerializer,
                "ios": NativePushTokenSerializer,
                "web": WebPushTokenSerializer,
            },
            resource_type_field_name="platform",
        ),
        responses={201: PushTokenSerializer},
        summary="Register a device (again: refreshed; a device of another shopper moves to this one)",
    )
    @idempotent
    def post(self, request: Request, user_id: str) -> Response:
        serializer = PushTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        push_token = services.push_token_register(
            user_id=user_id,
            platform=data["platform"],
            token=data["token"],
            app_id=data.get("app_id", ""),
            keys=data.get("keys"),
        )
        return Response(PushTokenSerializer(push_token).data, status=status.HTTP_201_CREATED)


class UserPushTokenView(APIView):
    required_scopes = {Scope.PUSH_TOKENS}

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="Removed")},
        summary="Remove a device (web: the subscription's endpoint, URL-encoded)",
    )
    @idempotent
    def delete(self, request: Request, user_id: str, token: str) -> Response:
        services.push_token_unregister(user_id=user_id, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserOptOutsView(APIView):
    required_scopes = {Scope.PUSH_TOKENS}

    @extend_schema(
        request=OptOutSerializer,
        responses={204: OpenApiResponse(description="Recorded (again: harmless)")},
        summary="The shopper turned a channel off in the app: consent withdrawn, engagement.unsubscribed",
    )
    @idempotent
    def post(self, request: Request, user_id: str) -> Response:
        serializer = OptOutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.profile_consent_withdraw(
            user_id=user_id, channel=serializer.validated_data["channel"], source="client"
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


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
