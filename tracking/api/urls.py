from __future__ import annotations

from django.urls import path, re_path

from tracking.api.events import TrackingEventsView
from tracking.api.reports import CampaignReportView, CampaignsExportView, RawExportView

urlpatterns = [
    path("events", TrackingEventsView.as_view(), name="tracking-events"),
    # Ids are bigints: a longer number is a 404 from the resolver, never a database error.
    re_path(
        r"^campaigns/(?P<campaign_id>[0-9]{1,18})/report$",
        CampaignReportView.as_view(),
        name="campaign-report",
    ),
    re_path(
        r"^reports/campaigns\.(?P<file_format>csv|xlsx)$",
        CampaignsExportView.as_view(),
        name="campaigns-export",
    ),
    re_path(
        r"^reports/(?P<kind>interventions|deliveries|events|conversions)\.(?P<file_format>csv|xlsx)$",
        RawExportView.as_view(),
        name="raw-export",
    ),
]
