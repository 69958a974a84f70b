from __future__ import annotations

from django.urls import path, re_path

from delivery.api import interventions, runs

urlpatterns = [
    path("interventions", interventions.InterventionListView.as_view(), name="interventions"),
    path(
        "interventions/<uuid:intervention_id>",
        interventions.InterventionDetailView.as_view(),
        name="intervention-detail",
    ),
    # Ids are bigints: anything longer is a 404 from the router, never a database error.
    re_path(
        r"^campaigns/(?P<campaign_id>[0-9]{1,18})/runs$",
        runs.CampaignRunListView.as_view(),
        name="campaign-runs",
    ),
    re_path(r"^runs/(?P<run_id>[0-9]{1,18})$", runs.RunDetailView.as_view(), name="run-detail"),
    re_path(r"^runs/(?P<run_id>[0-9]{1,18})/pause$", runs.RunPauseView.as_view(), name="run-pause"),
    re_path(r"^runs/(?P<run_id>[0-9]{1,18})/resume$", runs.RunResumeView.as_view(), name="run-resume"),
    re_path(r"^runs/(?P<run_id>[0-9]{1,18})/cancel$", runs.RunCancelView.as_view(), name="run-cancel"),
]
