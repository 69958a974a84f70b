"""``GET /campaigns/{id}/report`` (JSON), ``GET /reports/campaigns.csv|.xlsx`` (exports) and the raw rows,
``GET /reports/{interventions,deliveries,events,conversions}.csv|.xlsx``; scope ``reports``.

Thin: parse the period, call tracking.reports / tracking.exports, format. Routes: tracking/api/urls.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.models import Scope
from core.errors import ApplicationError
from tracking import exports
from tracking.analytics import Interval, SampleRatioCheck
from tracking.reports import (
    COUNTS,
    CampaignReport,
    GroupReport,
    ReportPeriod,
    campaign_report,
    report_period_parse,
)

PERIOD_PARAMETERS = [
    OpenApiParameter(
        "from", OpenApiTypes.STR, description="Exposures from this date (YYYY-MM-DD) or ISO-8601 datetime"
    ),
    OpenApiParameter(
        "to", OpenApiTypes.STR, description="Exposures until this date (inclusive) or datetime (exclusive)"
    ),
]
XLSX = exports.XLSX


def _period(request: Request) -> ReportPeriod:
    return report_period_parse(start=request.query_params.get("from"), end=request.query_params.get("to"))


def _interval(value: Interval | None) -> dict[str, float] | None:
    return {"low": value.low, "high": value.high} if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def _comparison(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out = dict(value)
    out["relative_lift_ci"] = _interval(value.get("relative_lift_ci"))
    out["absolute_lift_ci"] = _interval(value.get("absolute_lift_ci"))
    always_valid = value["always_valid"]
    out["always_valid"] = {
        "absolute_lift_ci": _interval(always_valid["absolute_lift_ci"]),
        "p_value": always_valid["p_value"],
    }
    if "incremental_revenue" in out:
        out["incremental_revenue"] = _money(value["incremental_revenue"])
        out["incremental_revenue_ci"] = _interval(value.get("incremental_revenue_ci"))
    return out


def group_json(group: GroupReport) -> dict[str, Any]:
    return {
        "key": group.key,
        "name": group.name,
        "role": group.role,
        "variant_id": group.variant_id,
        "weight": group.weight,
        "expected_share": group.expected_share,
        **{name: getattr(group, name) for name in COUNTS},
        "conversion_rate": group.conversion_rate,
        "conversion_rate_ci": _interval(group.conversion_rate_ci),
        "revenue": _money(group.revenue),
        "revenue_other_currencies": {k: str(v) for k, v in sorted(group.revenue_other_currencies.items())},
        "revenue_per_user": _money(group.revenue_per_user),
        "revenue_per_exposure": _money(group.revenue_per_exposure),
        "vs_control": _comparison(group.vs_control),
        "vs_holdout": _comparison(group.vs_holdout),
    }


def _srm_json(srm: SampleRatioCheck) -> dict[str, Any]:
    return asdict(srm)


def report_json(report: CampaignReport) -> dict[str, Any]:
    return {
        "campaign": {
            "id": report.campaign_id,
            "name": report.campaign_name,
            "status": report.campaign_status,
            "holdout_percent": str(report.holdout_percent),
            "minimum_detectable_effect": report.minimum_detectable_effect,
        },
        "period": {
            "from": report.period.start.isoformat() if report.period.start else None,
            "to": report.period.end.isoformat() if report.period.end else None,
        },
        "currency": report.currency,
        "currency_note": (
            f"Revenue is in {report.currency}, the currency of most of this campaign's orders; orders in "
            "other currencies are listed under revenue_other_currencies, not converted."
        ),
        "funnel": report.funnel,
        "incremental": _comparison(report.incremental),
        "variants": [group_json(group) for group in report.variants],
        "holdout": group_json(report.holdout),
        "srm": _srm_json(report.srm),
        "generated_at": report.generated_at.isoformat(),
    }


class _AnyAcceptNegotiation(BaseContentNegotiation):
    """Exports answer CSV/XLSX whatever ``Accept`` says, and their errors in JSON (the only renderer)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class CampaignReportView(APIView):
    required_scopes = {Scope.REPORTS}

    @extend_schema(
        parameters=PERIOD_PARAMETERS,
        responses={200: OpenApiTypes.OBJECT},
        summary="A campaign's funnel, variants and statistics",
        operation_id="campaign_report",
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        return Response(report_json(campaign_report(campaign_id=int(campaign_id), period=_period(request))))


class CampaignsExportView(APIView):
    required_scopes = {Scope.REPORTS}
    content_negotiation_class = _AnyAcceptNegotiation

    @extend_schema(
        parameters=[
            *PERIOD_PARAMETERS,
            OpenApiParameter("campaign", OpenApiTypes.INT, description="Only this campaign"),
        ],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, XLSX): OpenApiTypes.BINARY},
        summary="Every campaign's report rows (one per variant and holdout) as CSV or XLSX",
        operation_id="campaigns_report_export",
    )
    def get(self, request: Request, file_format: str) -> StreamingHttpResponse | FileResponse:
        period = _period(request)
        campaign_id = _campaign_param(request)
        return exports.export_response(file_format=file_format, period=period, campaign_id=campaign_id)


class RawExportView(APIView):
    required_scopes = {Scope.REPORTS}
    content_negotiation_class = _AnyAcceptNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from",
                OpenApiTypes.STR,
                description="Rows from this date (YYYY-MM-DD) or ISO-8601 datetime: interventions by "
                "decision time, deliveries by queue time, events and conversions by when they occurred",
            ),
            OpenApiParameter(
                "to", OpenApiTypes.STR, description="Until this date (inclusive) or datetime (exclusive)"
            ),
            OpenApiParameter("campaign", OpenApiTypes.INT, description="Only this campaign's rows"),
        ],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, XLSX): OpenApiTypes.BINARY},
        summary="Raw interventions, deliveries, tracking events or conversions of a period, oldest first "
        "(CSV streamed)",
        operation_id="raw_export",
    )
    def get(self, request: Request, kind: str, file_format: str) -> StreamingHttpResponse | FileResponse:
        period = _period(request)
        campaign_id = _campaign_param(request)
        return exports.raw_export_response(
            kind=kind, file_format=file_format, period=period, campaign_id=campaign_id
        )


def _campaign_param(request: Request) -> int | None:
    raw = request.query_params.get("campaign")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApplicationError(
            "'campaign' is not a campaign id.", code="invalid_campaign", details={"campaign": raw}
        )
    return int(raw)
