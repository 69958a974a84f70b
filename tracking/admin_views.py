"""The back office's campaign report page and its CSV/XLSX downloads (staff who may view campaigns).

Charts are inline SVG whose geometry is computed here and drawn by the template: no JavaScript, no CDN,
so the page works offline and prints. Routed in intervention_engine/urls.py under ``admin/reports/``,
wrapped in ``admin.site.admin_view`` (staff login, the admin's cache headers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
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
from tracking.analytics import Interval
from tracking.reports import (
    CONTROL,
    HOLDOUT,
    CampaignReport,
    CampaignTimeline,
    DailyPoint,
    OverviewRow,
    ReportPeriod,
    campaign_report,
    campaign_timeline,
    overview_row,
    report_period_parse,
)

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
                "looks": [
                    look for look in (_look(group.name, vs_control), _look(group.name, vs_holdout)) if look
                ],
            }
        )
    return rows


def _points(interval: Any) -> str:
    return "—" if interval is None else f"[{interval.low * 100:+.1f}, {interval.high * 100:+.1f}] pp"


def _look(name: str, comparison: dict[str, Any] | None) -> dict[str, Any] | None:
    """One comparison as the "honest daily look" table shows it: the difference in points, the
    fixed-horizon interval and p beside the always-valid ones, the power reached and the verdict."""
    if not comparison:
        return None
    always_valid = comparison["always_valid"]
    power = comparison.get("power")
    return {
        "group": name,
        "baseline": comparison["baseline_name"],
        "difference": f"{comparison['absolute_lift'] * 100:+.2f} pp",
        "fixed_ci": _points(comparison.get("absolute_lift_ci")),
        "fixed_p": _p_value(comparison.get("p_value")),
        "valid_ci": _points(always_valid.get("absolute_lift_ci")),
        "valid_p": _p_value(always_valid.get("p_value")),
        "power": _percent(power, 0) if power is not None else "—",
        "verdict": comparison["verdict"],
    }


def looks(report: CampaignReport) -> list[dict[str, Any]]:
    """Every variant against control (where there is one) and against the holdout, then the campaign."""
    found = [look for row in table_rows(report) for look in row["looks"]]
    campaign = _look("All variants", report.incremental)
    return [*found, campaign] if campaign else found


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
        "looks": looks(report),
        "time_charts": timeline_charts(report, campaign_timeline(report=report, period=period)),
        "minimum_detectable_effect": f"{report.minimum_detectable_effect * 100:.2g}",
        "start": start,
        "end": end,
        "error": error,
        "rate_chart": rate,
        "rate_bars": rate_bars,
        "funnel_chart": funnel,
        "funnel_steps": funnel_steps,
        "campaign_url": reverse("admin:campaigns_campaign_change", args=[campaign_id]),
        "raw_links": raw_links(
            request,
            query={k: v for k, v in {"campaign": str(campaign_id), "from": start, "to": end}.items() if v},
        ),
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


# --- Over time: line charts with interval bands -------------------------------------------------------

TIME_WIDTH = 720
TIME_HEIGHT = 230
TIME_LEFT = 64
TIME_RIGHT = 12
TIME_TOP = 12
TIME_BOTTOM = 30
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Trace:
    """One line of a time chart: the path, its points, and the interval band as polygons."""

    name: str
    css: str
    path: str
    points: list[tuple[float, float]]
    bands: list[str]
    outline: bool = False  # draw the band as an outline (the always-valid band over the fixed one)


@dataclass(frozen=True)
class TimeChart:
    key: str
    title: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    traces: list[Trace]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    zero_y: float | None


Values = list[float | None]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def time_chart(
    *,
    key: str,
    title: str,
    days: list[date],
    traces: list[tuple[str, str, Values, Values | None, Values | None, bool]],
    y_format: Callable[[float], str],
    zero: bool = False,
) -> TimeChart:
    """Geometry of a line chart over days: ``traces`` are (name, css class, values, lows, highs,
    outline); the y range covers every value and band, and zero when ``zero``."""
    found = [
        v
        for _, _, values, lows, highs, _ in traces
        for series in (values, lows or [], highs or [])
        for v in series
        if v is not None
    ]
    low, high = (min(found), max(found)) if found else (0.0, 1.0)
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    ticks = _nice_ticks(low, high)
    low, high = ticks[0], ticks[-1]
    plot_w = TIME_WIDTH - TIME_LEFT - TIME_RIGHT
    plot_h = TIME_HEIGHT - TIME_TOP - TIME_BOTTOM

    def x(index: int) -> float:
        return round(TIME_LEFT + (plot_w * index / (len(days) - 1) if len(days) > 1 else plot_w / 2), 2)

    def y(value: float) -> float:
        return round(TIME_TOP + plot_h * (1 - (value - low) / (high - low)), 2)

    drawn = []
    for name, css, values, lows, highs, outline in traces:
        path, points = [], []
        for index, value in enumerate(values):
            if value is None:
                continue
            points.append((x(index), y(value)))
            previous = values[index - 1] if index else None
            path.append(f"{'L' if previous is not None else 'M'}{x(index)},{y(value)}")
        bands: list[str] = []
        if lows is not None and highs is not None:
            segment: list[int] = []
            for index in [*range(len(days)), -1]:
                if index >= 0 and lows[index] is not None and highs[index] is not None:
                    segment.append(index)
                    continue
                if segment:
                    upper = [f"{x(i)},{y(highs[i] or 0)}" for i in segment]
                    lower = [f"{x(i)},{y(lows[i] or 0)}" for i in reversed(segment)]
                    bands.append(" ".join(upper + lower))
                    segment = []
        drawn.append(
            Trace(name=name, css=css, path=" ".join(path), points=points, bands=bands, outline=outline)
        )
    every = max(1, math.ceil(len(days) / MAX_X_LABELS))
    x_ticks = [(x(i), f"{day:%b %d}") for i, day in enumerate(days) if i % every == 0]
    return TimeChart(
        key=key,
        title=title,
        width=TIME_WIDTH,
        height=TIME_HEIGHT,
        left=TIME_LEFT,
        right=TIME_WIDTH - TIME_RIGHT,
        top=TIME_TOP,
        bottom=TIME_HEIGHT - TIME_BOTTOM,
        traces=drawn,
        y_ticks=[(y(t), y_format(t)) for t in ticks],
        x_ticks=x_ticks,
        zero_y=y(0.0) if low < 0 < high else None,
    )


def _css(role: str, index: int) -> str:
    return role if role in (CONTROL, HOLDOUT) else f"treatment-{index % 4}"


def timeline_charts(report: CampaignReport, timeline: CampaignTimeline) -> list[TimeChart]:
    """Exposures per day, conversion rate so far and revenue per shopper so far (with 95 % intervals) per
    group, then each comparison's cumulative difference with its fixed-horizon and always-valid bands."""
    if not timeline.days:
        return []
    days = timeline.days
    styles = [_css(s.role, i) for i, s in enumerate(timeline.groups)]

    def per_group(
        value: Callable[[DailyPoint], float | None],
        interval: Callable[[DailyPoint], Interval | None] | None,
    ) -> list[tuple[str, str, Values, Values | None, Values | None, bool]]:
        traces: list[tuple[str, str, Values, Values | None, Values | None, bool]] = []
        for series, css in zip(timeline.groups, styles, strict=True):
            values = [value(p) for p in series.points]
            if interval is None:
                traces.append((series.name, css, values, None, None, False))
                continue
            ci = [interval(p) for p in series.points]
            lows: Values = [c.low if c else None for c in ci]
            highs: Values = [c.high if c else None for c in ci]
            traces.append((series.name, css, values, lows, highs, False))
        return traces

    charts = [
        time_chart(
            key="exposures",
            title="Exposures per day",
            days=days,
            traces=per_group(lambda p: float(p.exposures), None),
            y_format=lambda v: f"{v:,.0f}",
            zero=True,
        ),
        time_chart(
            key="conversion",
            title="Conversion rate so far, with 95 % intervals",
            days=days,
            traces=per_group(lambda p: p.conversion_rate, lambda p: p.conversion_rate_ci),
            y_format=lambda v: f"{v:.1%}",
            zero=True,
        ),
        time_chart(
            key="revenue",
            title=f"Revenue per shopper so far ({report.currency}), with 95 % intervals",
            days=days,
            traces=per_group(lambda p: p.revenue_per_user, lambda p: p.revenue_per_user_ci),
            y_format=lambda v: f"{v:,.2f}",
            zero=True,
        ),
    ]
    for index, lift in enumerate(timeline.lifts):
        difference: Values = [p.difference * 100 if p.difference is not None else None for p in lift.points]
        fixed_low: Values = [p.fixed_ci.low * 100 if p.fixed_ci else None for p in lift.points]
        fixed_high: Values = [p.fixed_ci.high * 100 if p.fixed_ci else None for p in lift.points]
        valid_low: Values = [p.always_valid_ci.low * 100 if p.always_valid_ci else None for p in lift.points]
        valid_high: Values = [
            p.always_valid_ci.high * 100 if p.always_valid_ci else None for p in lift.points
        ]
        charts.append(
            time_chart(
                key=f"lift-{index}",
                title=f"{lift.name} vs {lift.baseline}: difference in conversion rate so far (pp)",
                days=days,
                traces=[
                    ("always-valid 95 %", "valid", difference, valid_low, valid_high, True),
                    ("fixed-horizon 95 %", "fixed", difference, fixed_low, fixed_high, False),
                ],
                y_format=lambda v: f"{v:+.1f}",
                zero=True,
            )
        )
    return charts


# --- Overview: every campaign on one page -------------------------------------------------------------

# The columns the overview sorts by (``?o=name`` ascending, ``?o=-name`` descending), and their keys.
OVERVIEW_SORTS: dict[str, Callable[[OverviewRow], Any]] = {
    "name": lambda row: row.name.lower(),
    "status": lambda row: row.status,
    "exposures": lambda row: row.exposures,
    "conversion": lambda row: row.conversion_rate,
    "incremental": lambda row: row.incremental_revenue,
    "verdict": lambda row: {"better": 2, "": 1, "worse": 0}[row.decided],
}
OVERVIEW_DEFAULT_SORT = "-exposures"


def overview_sorted(rows: list[OverviewRow], order: str) -> list[OverviewRow]:
    """Sorted by a column of ``OVERVIEW_SORTS``; rows with nothing to sort by (no holdout, no shopper)
    last whichever the direction, then by name."""
    column = order.lstrip("-")
    key = OVERVIEW_SORTS[column]
    present = [row for row in rows if key(row) is not None]
    missing = sorted((row for row in rows if key(row) is None), key=lambda row: row.name.lower())
    present.sort(key=lambda row: row.name.lower())
    present.sort(key=key, reverse=order.startswith("-"))
    return present + missing


@admin_permission_required([VIEW_PERMISSION])
def campaigns_overview_view(request: HttpRequest) -> HttpResponse:
    """Every campaign with status, reach, conversion, incremental revenue and the verdict, for a period."""
    start, end = request.GET.get("from", ""), request.GET.get("to", "")
    order = request.GET.get("o", OVERVIEW_DEFAULT_SORT)
    if order.lstrip("-") not in OVERVIEW_SORTS:
        order = OVERVIEW_DEFAULT_SORT
    error = ""
    try:
        period = report_period_parse(start=start, end=end)
    except ApplicationError as exc:
        error, period = exc.message, ReportPeriod()
    rows = overview_sorted([overview_row(report) for report in exports.reports_iter(period=period)], order)
    period_query = {k: v for k, v in {"from": start, "to": end}.items() if v}
    headers = []
    for column, label in (
        ("name", "Campaign"),
        ("status", "Status"),
        ("exposures", "Exposures"),
        ("conversion", "Conversion"),
        ("incremental", "Incremental revenue [95 %]"),
        ("verdict", "Verdict"),
    ):
        ascending = order == column
        flip = f"-{column}" if ascending else column
        headers.append(
            {
                "label": label,
                "url": "?" + urlencode({**period_query, "o": flip}),
                "sorted": "asc" if ascending else "desc" if order == f"-{column}" else "",
            }
        )
    export_query = urlencode(period_query)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Campaign results overview",
        "subtitle": None,
        "rows": [
            {
                "row": row,
                "rate": _percent(row.conversion_rate, 2),
                "incremental_ci": (
                    f"[{row.incremental_revenue_ci.low:,.2f}, {row.incremental_revenue_ci.high:,.2f}]"
                    if row.incremental_revenue_ci
                    else ""
                ),
                "url": reverse("admin-campaign-report", args=[row.campaign_id])
                + (f"?{export_query}" if export_query else ""),
            }
            for row in rows
        ],
        "headers": headers,
        "order": order,
        "start": start,
        "end": end,
        "error": error,
        "raw_links": raw_links(request, query=period_query),
        "csv_url": f"{reverse('admin-reports-export', args=['csv'])}?{export_query}",
        "xlsx_url": f"{reverse('admin-reports-export', args=['xlsx'])}?{export_query}",
    }
    return TemplateResponse(request, "admin/tracking/overview.html", context)


# --- Raw rows -------------------------------------------------------------------------------------------

# Who may download each kind of raw row: whoever may look at those rows in the admin.
RAW_PERMISSIONS = {
    "interventions": "interventions.view_intervention",
    "deliveries": "interventions.view_delivery",
    "events": "tracking.view_trackingevent",
    "conversions": "tracking.view_conversion",
}


def _raw_permission(request: HttpRequest, *, kind: str, file_format: str) -> list[str]:
    return [RAW_PERMISSIONS[kind]]


@admin_permission_required(_raw_permission)
def raw_export_view(request: HttpRequest, kind: str, file_format: str) -> HttpResponseBase:
    """The raw rows of one kind as CSV or XLSX, for the period in ``from``/``to`` (and ``?campaign=``)."""
    try:
        period = report_period_parse(start=request.GET.get("from"), end=request.GET.get("to"))
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    raw = request.GET.get("campaign", "")
    if raw and not (raw.isdigit() and len(raw) <= 18):
        return HttpResponse(
            "'campaign' is not a campaign id.", status=400, content_type="text/plain; charset=utf-8"
        )
    return exports.raw_export_response(
        kind=kind, file_format=file_format, period=period, campaign_id=int(raw) if raw else None
    )


def raw_links(request: HttpRequest, *, query: dict[str, str]) -> list[dict[str, str]]:
    """The raw downloads this user may take, with the page's period (and campaign)."""
    encoded = urlencode(query)
    return [
        {
            "kind": kind,
            "csv": f"{reverse('admin-raw-export', args=[kind, 'csv'])}?{encoded}",
            "xlsx": f"{reverse('admin-raw-export', args=[kind, 'xlsx'])}?{encoded}",
        }
        for kind, permission in RAW_PERMISSIONS.items()
        if request.user.has_perm(permission)
    ]
