"""The back office's AdminSite: product branding and a dashboard of live numbers on the index page.

Installed as the default site by ``InterventionEngineAdminConfig`` (in INSTALLED_APPS instead of
``django.contrib.admin``), so every app keeps registering with ``django.contrib.admin.site`` as usual.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, URLResolver, path, reverse
from django.utils import timezone


@dataclass(frozen=True)
class DashboardNumber:
    label: str
    value: int | str
    url: str | None


def _start_of_today() -> datetime:
    return datetime.combine(timezone.localdate(), time.min, tzinfo=timezone.get_current_timezone())


def _changelist_url(model_path: str, query: dict[str, str]) -> str | None:
    try:
        url = reverse(f"admin:{model_path.replace('.', '_')}_changelist")
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(query)}"


def dashboard_numbers(request: HttpRequest) -> list[DashboardNumber]:
    """The counts a marketer checks first thing: what is running and what happened today (UTC).

    The interventions and conversions tables have no index on time alone, so these counts scan them; when
    they grow past what one count per page view can afford, cache the numbers for a minute.

    The project package sits above every app, so reading their models here does not break the import
    direction; the counts are only shown to someone allowed to view the underlying model.
    """
    from campaigns.models import Campaign
    from interventions.models import Intervention
    from tracking.models import Conversion

    since = _start_of_today()
    today = {"created_at__gte": since.isoformat()}
    numbers: list[DashboardNumber] = []
    user = request.user
    if user.has_perm("campaigns.view_campaign"):
        numbers.append(
            DashboardNumber(
                "Active campaigns",
                Campaign.objects.filter(status=Campaign.Status.ACTIVE).count(),
                _changelist_url("campaigns.campaign", {"status__exact": "active"}),
            )
        )
    if user.has_perm("interventions.view_intervention"):
        numbers.append(
            DashboardNumber(
                "Interventions today",
                Intervention.objects.filter(created_at__gte=since).count(),
                _changelist_url("interventions.intervention", today),
            )
        )
    if user.has_perm("tracking.view_conversion"):
        conversions = Conversion.objects.filter(occurred_at__gte=since)
        occurred_today = {"occurred_at__gte": since.isoformat()}
        numbers.append(
            DashboardNumber(
                "Conversions today",
                conversions.count(),
                _changelist_url("tracking.conversion", occurred_today),
            )
        )
        numbers.append(
            DashboardNumber(
                "Attributed conversions today",
                conversions.filter(intervention__isnull=False).count(),
                _changelist_url("tracking.conversion", {**occurred_today, "intervention__isnull": "False"}),
            )
        )
    return numbers


class InterventionEngineAdminSite(admin.AdminSite):
    site_header = "Intervention Engine"
    site_title = "Intervention Engine"
    index_title = "Back office"
    index_template = "admin/ie_index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from delivery.admin import dead_letters_allowed

        context = {
            "dashboard_numbers": dashboard_numbers(request),
            "dead_letters_url": reverse("admin:dead_letters") if dead_letters_allowed(request) else None,
            "results_url": (
                reverse("admin-campaigns-overview")
                if request.user.has_perm("campaigns.view_campaign")
                else None
            ),
            **(extra_context or {}),
        }
        return super().index(request, extra_context=context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Every app is loaded by the time the URLs are built (not when this module is).
        from delivery.admin import dead_letters_view

        dead_letters = path(
            "dead-letters/", self.admin_view(dead_letters_view), {"admin_site": self}, name="dead_letters"
        )
        return [dead_letters, *super().get_urls()]


class InterventionEngineAdminConfig(AdminConfig):
    default_site = "intervention_engine.admin_site.InterventionEngineAdminSite"

    def ready(self) -> None:
        super().ready()  # registers every app's admin
        # Then replaces Celery beat's, whose list actions declare no permission.
        importlib.import_module("intervention_engine.periodic_tasks_admin")
