from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from delivery import views as delivery_views
from intervention_engine import health
from tracking import admin_views as tracking_admin_views
from tracking.api import links as tracking_links
from tracking.api import webhooks as tracking_webhooks

urlpatterns = [
    # Campaign results (tracking/admin_views.py), before admin.site.urls: its catch-all would answer first.
    path(
        "admin/reports/campaigns/<int:campaign_id>/",
        admin.site.admin_view(tracking_admin_views.campaign_report_view),
        name="admin-campaign-report",
    ),
    re_path(
        r"^admin/reports/campaigns\.(?P<file_format>csv|xlsx)$",
        admin.site.admin_view(tracking_admin_views.reports_export_view),
        name="admin-reports-export",
    ),
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", health.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Provider webhooks and signed message links (tracking/api/webhooks.py, links.py).
    path(
        "api/v1/webhooks/anymail/",
        include(
            (tracking_webhooks.anymail_tracking_urlpatterns(esp=settings.ANYMAIL_TRACKING_ESP), "anymail"),
            namespace="anymail",
        ),
    ),
    path("api/v1/webhooks/twilio/status", tracking_webhooks.twilio_status, name="webhook-twilio-status"),
    path("api/v1/webhooks/push-receipts", tracking_webhooks.PushReceiptsView.as_view(), name="webhook-push"),
    path("t/o/<str:token>.gif", tracking_links.open_pixel, name="track-open"),
    path("t/c/<str:token>", tracking_links.click_redirect, name="track-click"),
    path("u/<str:token>", tracking_links.unsubscribe, name="unsubscribe"),
    path("api/v1/", include("api.urls")),
    path("ws/stats", delivery_views.stats_view, name="ws-stats"),
    path("demo/", delivery_views.demo_page, name="demo"),
    path("demo/ticket", delivery_views.demo_ticket, name="demo-ticket"),
    path("demo/cart", delivery_views.demo_cart, name="demo-cart"),
    path("demo/idle", delivery_views.demo_idle, name="demo-idle"),
]

# Under /api/ Django's own 404 and 500 answer in the API's JSON error shape; elsewhere, the usual pages.
handler404 = "api.exceptions.json_404"
handler500 = "api.exceptions.json_500"
