"""``/api/v1/``: each app's API routes, gathered here by path (no app imports another's views)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("personalization.api.urls")),
    path("", include("campaigns.api.urls")),
    path("", include("delivery.api.urls")),
    path("", include("tracking.api.reports")),
    path("", include("tracking.api.events")),
]
