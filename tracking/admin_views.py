"""The back office's campaign report page and its CSV/XLSX downloads (staff who may view campaigns).

Charts are inline SVG whose geometry is computed here and drawn by the template: no JavaScript, no CDN,
so the page works offline and prints. Routed in intervention_engine/urls.py under ``admin/reports/``,
wrapped in ``admin.site.admin_view`` (staff login, the admin's cache headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import reverse

from core.admin import admin_permission_required
from core.errors import ApplicationError, NotFoundError
from tracking import exports
from tracking.reports import CampaignReport, ReportPeriod, campaign_report, report_period_parse

VIEW_PERMISSION = "campaigns.view_campaign"
SIGNIFICANCE = 0.05

# Chart geometry, in SVG user units (the SVG scales to the panel's width).
CHART_WIDTH = 720
LABEL_WIDTH = 150
VALUE_WIDTH = 190
ROW_HEIGHT = 34
BAR_HEIGHT = 18
TOP = 8


@dataclass(frozen=True)
class RateBar:
    """One group in the conversion-rate chart: the bar, and the 95 % interval as an error bar."""

    label: str
    role: str
    y: float
    width: float
    ci_low_x: float | None
    ci_high_x: float | None
    text: str


@dataclass(frozen=True)
class FunnelStep:
    label: str
    y: float
    x: float
    width: float
    count: int
    share_of_exposures: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_x: int
    plot_width: int
    value_x: int


def _plot_width() -> int:
    return CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH


def _chart(*, rows: int) -> Chart:
    """The frame every horizontal-bar chart of the page shares: labels left, bars, values right."""
    return Chart(
        width=CHART_WIDTH,
        height=TOP * 2 + rows * ROW_HEIGHT,
        plot_x=LABEL_WIDTH,
        plot_width=_plot_width(),
        value_x=CHART_WIDTH - VALUE_WIDTH + 8,
    )


def rate_chart(report: CampaignReport) -> tuple[Chart, list[RateBar]]:
    groups = [*report.variants, report.holdout]
    highest = max(
        [g.conversion_rate_ci.high for g in groups if g.conversion_rate_ci]
        + [g.conversion_rate or 0 for g in groups]
    )
    scale = _plot_width() / (highest * 1.05 if highest > 0 else 1)
    bars = []
    for index, group in enumerate(groups):
        ci = group.conversion_rate_ci
        rate = group.conversion_rate
        bars.append(
            RateBar(
                label=group.name,
                role=group.role,
                y=TOP + index * ROW_HEIGHT,
                width=round((rate or 0) * scale, 2),
                ci_low_x=round(LABEL_WIDTH + ci.low * scale, 2) if ci else None,
                ci_high_x=round(LABEL_WIDTH + ci.high * scale, 2) if ci else None,
                text=f"{rate:.1%}  [{ci.low:.1%}, {ci.high:.1%}]"
                if rate is not None and ci
                else "no exposures",
            )
        )
    chart = _chart(rows=len(groups))
    return chart, bars


FUNNEL_STEPS = (
    ("exposures", "Exposed"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("displayed", "Seen"),
    ("clicked", "Clicked"),
    ("orders", "Orders"),
)


def funnel_chart(report: CampaignReport) -> tuple[Chart, list[FunnelStep]]:
    """Centered bars from exposures to orders, each with its share of the exposures.

    Shares of exposures rather than of the step before: an order needs no click (a shopper may come back
    by themselves), so orders can outnumber clicks and a step-to-step ratio above 100 % would mislead.
    """
    counts = [(label, int(report.funnel.get(key, 0))) for key, label in FUNNEL_STEPS]
    exposures = counts[0][1]
    top = max([count for _, count in counts] + [1])
    steps = []
    for index, (label, count) in enumerate(counts):
        width = _plot_width() * count / top
        share = f"{count / exposures:.1%}" if exposures and index else ""
        steps.append(
            FunnelStep(
                label=label,
                y=TOP + index * ROW_HEIGHT,
                x=round(LABEL_WIDTH + (_plot_width() - width) / 2, 2),
                width=round(width, 2),
                count=count,
                share_of_exposures=share,
            )
        )
    chart = _chart(rows=len(counts))
    return chart, steps


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}%}"


def _signed_percent(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _interval(value: Any) -> str:
    return "" if value is None else f"[{value.low:+.1%}, {value.high:+.1%}]"


def _p_value(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def table_rows(report: CampaignReport) -> list[dict[str, Any]]:
    """The variant table, formatted for reading (the exports carry the raw numbers)."""
    rows = []
    for group in [*report.variants, report.holdout]:
        vs_control = group.vs_control or {}
        vs_holdout = group.vs_holdout or {}
        ci = group.conversion_rate_ci
        rows.append(
            {
                "group": group,
                "rate": _percent(group.conversion_rate, 2),
                "rate_ci": f"[{ci.low:.1%}, {ci.high:.1%}]" if ci else "",
                "lift_control": _signed_percent(vs_control.get("relative_lift")) if vs_control else "",
                "lift_control_ci": _interval(vs_control.get("relative_lift_ci")),
                "p_control": _p_value(vs_control.get("p_value")) if vs_control else "",
                "test_control": vs_control.get("test", ""),
                "beat_control": _percent(vs_control.get("probability_to_beat")) if vs_control else "",
                "lift_holdout": _signed_percent(vs_holdout.get("relative_lift")) if vs_holdout else "",
                "lift_holdout_ci": _interval(vs_holdout.get("relative_lift_ci")),
                "p_holdout": _p_value(vs_holdout.get("p_value")) if vs_holdout else "",
                "incremental_revenue": vs_holdout.get("incremental_revenue", ""),
            }
        )
    return rows


def headline(report: CampaignReport) -> dict[str, Any] | None:
    """The headline, 'earned X more than doing nothing': all variants together against the holdout."""
    incremental = report.incremental
    if incremental is None:
        return None
    ci = incremental.get("incremental_revenue_ci")
    return {
        "revenue": incremental["incremental_revenue"],
        "amount": abs(incremental["incremental_revenue"]),
        "revenue_ci": f"{ci.low:,.2f} to {ci.high:,.2f}" if ci else "",
        "conversions": f"{incremental['incremental_conversions']:+.1f}",
        "lift": _signed_percent(incremental.get("relative_lift")),
        "p_value": _p_value(incremental.get("p_value")),
        "positive": incremental["incremental_revenue"] > 0,
        # Say plainly when the data cannot yet tell the campaign from chance.
        "significant": incremental.get("p_value", 1.0) < SIGNIFICANCE,
    }


@admin_permission_required([VIEW_PERMISSION])
def campaign_report_view(request: HttpRequest, campaign_id: int) -> HttpResponse:
    start, end = request.GET.get("from", ""), request.GET.get("to", "")
    error = ""
    try:
        period = report_period_parse(start=start, end=end)
    except ApplicationError as exc:
        error, period = exc.message, ReportPeriod()
    try:
        report = campaign_report(campaign_id=campaign_id, period=period)
    except NotFoundError as exc:
        raise Http404(exc.message) from exc
    rate, rate_bars = rate_chart(report)
    funnel, funnel_steps = funnel_chart(report)
    query = urlencode({k: v for k, v in {"campaign": campaign_id, "from": start, "to": end}.items() if v})
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": f"Results: {report.campaign_name}",
        "subtitle": None,
        "report": report,
        "rows": table_rows(report),
        "headline": headline(report),
        "start": start,
        "end": end,
        "error": error,
        "rate_chart": rate,
        "rate_bars": rate_bars,
        "funnel_chart": funnel,
        "funnel_steps": funnel_steps,
        "campaign_url": reverse("admin:campaigns_campaign_change", args=[campaign_id]),
        "csv_url": f"{reverse('admin-reports-export', args=['csv'])}?{query}",
        "xlsx_url": f"{reverse('admin-reports-export', args=['xlsx'])}?{query}",
    }
    return TemplateResponse(request, "admin/tracking/report.html", context)


@admin_permission_required([VIEW_PERMISSION])
def reports_export_view(request: HttpRequest, file_format: str) -> HttpResponseBase:
    """CSV or XLSX of one campaign (``?campaign=``) or all, for the period in ``from``/``to``."""
    try:
        period = report_period_parse(start=request.GET.get("from"), end=request.GET.get("to"))
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    raw = request.GET.get("campaign", "")
    if raw and not (raw.isdigit() and len(raw) <= 18):
        return HttpResponse(
            "'campaign' is not a campaign id.", status=400, content_type="text/plain; charset=utf-8"
        )
    campaign_id = int(raw) if raw else None
    return exports.export_response(file_format=file_format, period=period, campaign_id=campaign_id)
