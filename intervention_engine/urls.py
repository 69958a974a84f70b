"""Every route of the service, mounted here and only here; each app lists its own in its urls modules."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from intervention_engine import health
from notifications.api.urls import link_urlpatterns, webhook_urlpatterns
from tracking import admin_views as tracking_admin_views

api_v1: list[URLPattern | URLResolver] = [
    path("", include("personalization.api.urls")),
    path("", include("campaigns.api.urls")),
    path("", include("delivery.api.urls")),
    path("", include("gateway.api.urls")),
    path("", include("tracking.api.urls")),
    *webhook_urlpatterns,
]

urlpatterns = [
    # Campaign results (tracking/admin_views.py), before admin.site.urls: its catch-all would answer first.
    path(
        "admin/reports/campaigns/<int:campaign_id>/",
        admin.site.admin_view(tracking_admin_views.campaign_report_view),
        name="admin-campaign-report",
    ),
    path(
        "admin/reports/campaigns/",
        admin.site.admin_view(tracking_admin_views.campaigns_overview_view),
        name="admin-campaigns-overview",
    ),
    re_path(
        r"^admin/reports/campaigns\.(?P<file_format>csv|xlsx)$",
        admin.site.admin_view(tracking_admin_views.reports_export_view),
        name="admin-reports-export",
    ),
    re_path(
        r"^admin/reports/(?P<kind>interventions|deliveries|events|conversions)\.(?P<file_format>csv|xlsx)$",
        admin.site.admin_view(tracking_admin_views.raw_export_view),
        name="admin-raw-export",
    ),
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", health.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include(api_v1)),
    *link_urlpatterns,
    path("", include("gateway.urls")),
]

# Under /api/ Django's own 404 and 500 answer in the API's JSON error shape; elsewhere, the usual pages.
handler404 = "api.exceptions.json_404"
handler500 = "api.exceptions.json_500"
