from __future__ import annotations

from django.urls import path

from personalization.api import views

urlpatterns = [
    path("users/<str:user_id>/preferences", views.UserPreferencesView.as_view(), name="user-preferences"),
    path("users/<str:user_id>/push-tokens", views.UserPushTokensView.as_view(), name="user-push-tokens"),
    # path: a web token is the subscription's endpoint URL, slashes included.
    path(
        "users/<str:user_id>/push-tokens/<path:token>",
        views.UserPushTokenView.as_view(),
        name="user-push-token",
    ),
    path("users/<str:user_id>/opt-outs", views.UserOptOutsView.as_view(), name="user-opt-outs"),
    path("users/<str:user_id>/export", views.UserExportView.as_view(), name="user-export"),
    path("users/<str:user_id>", views.UserView.as_view(), name="user"),
]
