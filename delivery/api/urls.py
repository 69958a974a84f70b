from __future__ import annotations

from django.urls import path

from delivery.api import interventions

urlpatterns = [
    path("interventions", interventions.InterventionListView.as_view(), name="interventions"),
    path(
        "interventions/<uuid:intervention_id>",
        interventions.InterventionDetailView.as_view(),
        name="intervention-detail",
    ),
]
