from __future__ import annotations

from django.urls import path

from personalization.api import views

urlpatterns = [
    path("users/<str:user_id>/preferences", views.UserPreferencesView.as_view(), name="user-preferences"),
    path("users/<str:user_id>/export", views.UserExportView.as_view(), name="user-export"),
    path("users/<str:user_id>", views.UserView.as_view(), name="user"),
]
