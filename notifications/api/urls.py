"""Provider webhooks (under ``/api/v1/``) and the signed links messages carry (at the site's root)."""

from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, URLResolver, include, path

from notifications.api import links, webhooks

webhook_urlpatterns: list[URLPattern | URLResolver] = [
    # Only the configured ESP's tracking webhook (see webhooks.anymail_tracking_urlpatterns).
    path(
        "webhooks/anymail/",
        include(
            (webhooks.anymail_tracking_urlpatterns(esp=settings.ANYMAIL_TRACKING_ESP), "anymail"),
            namespace="anymail",
        ),
    ),
    path("webhooks/twilio/status", webhooks.twilio_status, name="webhook-twilio-status"),
    path("webhooks/twilio/inbound", webhooks.twilio_inbound, name="webhook-twilio-inbound"),
    path("webhooks/push-receipts", webhooks.PushReceiptsView.as_view(), name="webhook-push"),
]

link_urlpatterns: list[URLPattern | URLResolver] = [
    path("t/o/<str:token>.gif", links.open_pixel, name="track-open"),
    path("t/c/<str:token>", links.click_redirect, name="track-click"),
    path("u/<str:token>", links.unsubscribe, name="unsubscribe"),
]
