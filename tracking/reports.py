"""Campaign reports: what each variant (and the holdout) did, and what it earned compared with nothing.

Reads only. Everything is counted in PostgreSQL — three grouped queries per batch of campaigns whatever
the number of rows — and tracking/analytics.py turns the counts into intervals, tests and lifts.

Who counts (see docs/analytics.md for the reasoning):
- A shopper is *exposed* to a group when the decision path assigned them to it: every intervention with
  a variant, sent or not (quiet hours, no reachable channel, a control variant with nothing to show), is
  an exposure of that variant; every holdout intervention is an exposure of the holdout. Comparing what
  was *assigned* (intent to treat) keeps the groups comparable: the holdout is drawn before channels are
  chosen, so dropping unsent treatment exposures would compare a filtered group with an unfiltered one.
- Rates are per shopper: ``converters / users`` where ``users`` counts distinct shoppers, because the
  assignment (and so the experiment) is per shopper, not per message.
- The period selects the cohort by exposure time (``Intervention.created_at``); the conversions counted
  are those attributed to the interventions of that cohort, whenever they happened.
- Revenue is reported in the campaign's main currency (the one most of its orders used) with no
  exchange-rate conversion; other currencies are listed separately, never added in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, When
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from campaigns import selectors as campaign_selectors
from campaigns.models import Campaign
from core.errors import ApplicationError, NotFoundError
from interventions.models import Intervention
from interventions.selectors import INTERVENTION_TABLE
from tracking import analytics
from tracking.models import Conversion, TrackingEvent

DEFAULT_CURRENCY = "EUR"
HOLDOUT = "holdout"
CONTROL = "control"
TREATMENT = "treatment"
MONEY = Decimal("0.01")
MIN_DETECTABLE_EFFECT = 0.0001  # 0.01 percentage point, the smallest the campaign field accepts


@dataclass(frozen=True)
class ReportPeriod:
    """``[start, end)`` in aware datetimes; either end may be open."""

    start: datetime | None = None
    end: datetime | None = None


def report_period_parse(*, start: str | None, end: str | None) -> ReportPeriod:
    """Parse ``from``/``to`` query values: a date (``2026-11-01``, a whole day, ``to`` inclusive) or an
    ISO-8601 datetime (naive ones are in UTC). Raises ``ApplicationError`` (400) on anything else."""
    parsed_start = _parse_bound(start, name="from", end_of_day=False)
    parsed_end = _parse_bound(end, name="to", end_of_day=True)
    if parsed_start and parsed_end and parsed_end <= parsed_start:
        raise ApplicationError(
            "'to' must be after 'from'.",
            code="invalid_period",
            details={"from": start, "to": end},
        )
    return ReportPeriod(start=parsed_start, end=parsed_end)


def _parse_bound(value: str | None, *, name: str, end_of_day: bool) -> datetime | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if "T" in text and " " in text:
        # An unencoded "+01:00" offset in a query string arrives as " 01:00".
        text = text.replace(" ", "+")
    try:
        moment = parse_datetime(text) if "T" in text or " " in text else None
        day: date | None = None if moment else parse_date(text)
    except ValueError:
        moment, day = None, None
    if moment is None and day is None:
        raise ApplicationError(
            f"'{name}' is not a date (YYYY-MM-DD) or an ISO-8601 datetime.",
            code="invalid_date",
            details={name: value},
        )
    if moment is None:
        assert day is not None
        # A date for 'to' means the whole day: the period ends at the next midnight.
        moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


@dataclass
class GroupReport:
    """One row of the report: a variant, or the holdout."""

    key: str
    name: str
    role: str  # treatment, control or holdout
    variant_id: int | None
    weight: int | None
    expected_share: float
    exposures: int = 0
    users: int = 0
    sent: int = 0
    suppressed: int = 0
    delivered: int = 0
    displayed: int = 0
    opened: int = 0
    clicked: int = 0
    dismissed: int = 0
    orders: int = 0
    converters: int = 0
    revenue: Decimal = Decimal("0.00")
    revenue_squares: Decimal = Decimal("0")  # sum over converters of (their revenue)², for the interval
    revenue_other_currencies: dict[str, Decimal] = field(default_factory=dict)
    first_exposed_at: datetime | None = None
    conversion_rate: float | None = None
    conversion_rate_ci: analytics.Interval | None = None
    revenue_per_user: Decimal | None = None
    revenue_per_exposure: Decimal | None = None
    vs_control: dict[str, Any] | None = None
    vs_holdout: dict[str, Any] | None = None


@dataclass
class CampaignReport:
    campaign_id: int
    campaign_name: str
    campaign_status: str
    holdout_percent: Decimal
    period: ReportPeriod
    currency: str
    groups: list[GroupReport]
    funnel: dict[str, int]
    srm: analytics.SampleRatioCheck
    incremental: dict[str, Any] | None
    generated_at: datetime
    minimum_detectable_effect: float = 0.01  # absolute, as a fraction (1 percentage point = 0.01)

    @property
    def variants(self) -> list[GroupReport]:
        return [g for g in self.groups if g.role != HOLDOUT]

    @property
    def holdout(self) -> GroupReport:
        return next(g for g in self.groups if g.role == HOLDOUT)

    @property
    def control(self) -> GroupReport | None:
        return next((g for g in self.groups if g.role == CONTROL), None)


# --- Queries -----------------------------------------------------------------------------------------


def _group_variant() -> Case:
    """The grouping key: the variant for treated shoppers, NULL for the holdout (whatever variant the
    holdout shopper would have had)."""
    return Case(When(is_holdout=True, then=None), default=F("variant_id"), output_field=IntegerField())


def _in_period(prefix: str, period: ReportPeriod) -> Q:
    condition = Q()
    if period.start is not None:
        condition &= Q(**{f"{prefix}created_at__gte": period.start})
    if period.end is not None:
        condition &= Q(**{f"{prefix}created_at__lt": period.end})
    return condition


def exposure_counts(*, campaign_ids: Sequence[int], period: ReportPeriod) -> list[dict[str, Any]]:
    """Per (campaign, variant or holdout): exposures, shoppers and how far the messages went.

    Engagement counts are of interventions with at least one such event (a shopper clicking twice is one
    click). Raw SQL so that the cohort's events are read once, grouped per intervention and joined: one
    EXISTS per event type per intervention costs four index probes per row, and on a large campaign the
    planner's cost estimate for that shape is high enough to switch on JIT compilation, which alone took
    seconds (measured on 100,000 interventions).
    """
    intervention = INTERVENTION_TABLE
    event = TrackingEvent._meta.db_table
    where, params = _intervention_filter(campaign_ids=campaign_ids, period=period, alias="i")
    events_where, events_params = _intervention_filter(campaign_ids=campaign_ids, period=period, alias="ei")
    seen = (TrackingEvent.Type.DISPLAYED.value, TrackingEvent.Type.OPENED.value)
    sql = f"""
        SELECT i.campaign_id,
               CASE WHEN i.is_holdout THEN NULL ELSE i.variant_id END AS group_variant,
               COUNT(*) AS exposures,
               COUNT(DISTINCT i.user_id) AS users,
               MIN(i.created_at) AS first_exposed_at,
               COUNT(*) FILTER (WHERE i.status = %s) AS suppressed,
               COUNT(*) FILTER (WHERE i.delivered_at IS NOT NULL) AS delivered,
               COUNT(*) FILTER (WHERE g.displayed) AS displayed,
               COUNT(*) FILTER (WHERE g.opened) AS opened,
               COUNT(*) FILTER (WHERE g.clicked) AS clicked,
               COUNT(*) FILTER (WHERE g.dismissed) AS dismissed
        FROM {intervention} i
        LEFT JOIN (
            SELECT e.intervention_id,
                   BOOL_OR(e.type IN (%s, %s)) AS displayed,
                   BOOL_OR(e.type = %s) AS opened,
                   BOOL_OR(e.type = %s) AS clicked,
                   BOOL_OR(e.type = %s) AS dismissed
            FROM {event} e JOIN {intervention} ei ON ei.id = e.intervention_id
            WHERE {" AND ".join(events_where)}
            GROUP BY e.intervention_id
        ) g ON g.intervention_id = i.id
        WHERE {" AND ".join(where)}
        GROUP BY 1, 2
    """  # noqa: S608  (table names come from the models, values are parameters)
    params = [
        Intervention.Status.SUPPRESSED.value,
        *seen,
        TrackingEvent.Type.OPENED.value,
        TrackingEvent.Type.CLICKED.value,
        TrackingEvent.Type.DISMISSED.value,
        *events_params,
        *params,
    ]
    return _fetch(sql, params)


def _intervention_filter(
    *, campaign_ids: Sequence[int], period: ReportPeriod, alias: str = "i"
) -> tuple[list[str], list[Any]]:
    """SQL conditions on interventions (table ``alias``): the campaigns, grouped exposures, the period."""
    where = [f"{alias}.campaign_id = ANY(%s)", f"({alias}.is_holdout OR {alias}.variant_id IS NOT NULL)"]
    params: list[Any] = [list(campaign_ids)]
    if period.start is not None:
        where.append(f"{alias}.created_at >= %s")
        params.append(period.start)
    if period.end is not None:
        where.append(f"{alias}.created_at < %s")
        params.append(period.end)
    return where, params


def _fetch(sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [column.name for column in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def conversion_counts(*, campaign_ids: Sequence[int], period: ReportPeriod) -> QuerySet[Conversion, Any]:
    """Per (campaign, variant or holdout): orders and distinct converting shoppers, all currencies."""
    return (
        Conversion.objects.filter(campaign_id__in=campaign_ids, intervention__isnull=False)
        .filter(Q(is_holdout=True) | Q(variant__isnull=False))
        .filter(_in_period("intervention__", period))
        .annotate(group_variant=_group_variant())
        .values("campaign_id", "group_variant")
        .annotate(orders=Count("pk"), converters=Count("user_id", distinct=True))
        .order_by()
    )


def revenue_sums(*, campaign_ids: Sequence[int], period: ReportPeriod) -> list[dict[str, Any]]:
    """Per (campaign, variant or holdout, currency): revenue, orders and the sum of squared per-shopper
    revenue (the variance term of the revenue interval).

    Raw SQL because it aggregates an aggregate (per shopper, then per group), which the ORM cannot
    express without loading every shopper.
    """
    conversion = Conversion._meta.db_table
    intervention = INTERVENTION_TABLE
    # The cohort is the interventions' (alias i); c.campaign_id = i.campaign_id for an attributed order.
    where, params = _intervention_filter(campaign_ids=campaign_ids, period=period)
    where.append("(c.is_holdout OR c.variant_id IS NOT NULL)")
    sql = f"""
        SELECT campaign_id, group_variant, currency,
               SUM(orders) AS orders, SUM(revenue) AS revenue, SUM(revenue * revenue) AS revenue_squares
        FROM (
            SELECT c.campaign_id,
                   CASE WHEN c.is_holdout THEN NULL ELSE c.variant_id END AS group_variant,
                   c.currency, c.user_id, COUNT(*) AS orders, SUM(c.revenue) AS revenue
            FROM {conversion} c JOIN {intervention} i ON i.id = c.intervention_id
            WHERE {" AND ".join(where)}
            GROUP BY 1, 2, 3, 4
        ) per_shopper
        GROUP BY 1, 2, 3
    """  # noqa: S608  (table names come from the models, values are parameters)
    return _fetch(sql, params)


# --- Building a report -------------------------------------------------------------------------------


def campaign_report(*, campaign_id: int, period: ReportPeriod) -> CampaignReport:
    campaign = campaign_selectors.campaign_get(campaign_id=campaign_id)
    if campaign is None:
        raise NotFoundError("Campaign not found.", details={"campaign_id": campaign_id})
    return campaign_reports(campaigns=[campaign], period=period)[0]


def campaign_reports(*, campaigns: Sequence[Campaign], period: ReportPeriod) -> list[CampaignReport]:
    """Reports for campaigns whose variants are prefetched (``campaigns.selectors.campaign_list``); three
    queries for the whole batch."""
    ids = [c.pk for c in campaigns]
    if not ids:
        return []
    exposures: dict[tuple[int, int | None], dict[str, Any]] = {
        (row["campaign_id"], row["group_variant"]): row
        for row in exposure_counts(campaign_ids=ids, period=period)
    }
    conversions: dict[tuple[int, int | None], dict[str, Any]] = {
        (row["campaign_id"], row["group_variant"]): row
        for row in conversion_counts(campaign_ids=ids, period=period)
    }
    revenue: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in revenue_sums(campaign_ids=ids, period=period):
        revenue[row["campaign_id"]].append(row)
    generated_at = timezone.now()
    return [
        _build(
            campaign=campaign,
            period=period,
            exposures=exposures,
            conversions=conversions,
            revenue=revenue[campaign.pk],
            generated_at=generated_at,
        )
        for campaign in campaigns
    ]


def campaigns_for_export(*, campaign_id: int | None = None) -> QuerySet[Campaign]:
    campaigns = campaign_selectors.campaign_list()
    return campaigns.filter(pk=campaign_id) if campaign_id is not None else campaigns


def _main_currency(rows: Iterable[dict[str, Any]]) -> str:
    orders: dict[str, int] = defaultdict(int)
    for row in rows:
        orders[row["currency"]] += int(row["orders"])
    if not orders:
        return DEFAULT_CURRENCY
    return sorted(orders.items(), key=lambda item: (-item[1], item[0]))[0][0]


def _build(
    *,
    campaign: Campaign,
    period: ReportPeriod,
    exposures: dict[tuple[int, int | None], dict[str, Any]],
    conversions: dict[tuple[int, int | None], dict[str, Any]],
    revenue: list[dict[str, Any]],
    generated_at: datetime,
) -> CampaignReport:
    currency = _main_currency(revenue)
    holdout_share = float(campaign.holdout_percent or 0) / 100
    variants = sorted(campaign.variants.all(), key=lambda v: v.pk)
    total_weight = sum(v.weight for v in variants)
    groups: list[GroupReport] = []
    for variant in variants:
        share = (1 - holdout_share) * variant.weight / total_weight if total_weight else 0.0
        groups.append(
            GroupReport(
                key=f"variant:{variant.pk}",
                name=variant.name,
                role=CONTROL if variant.is_control else TREATMENT,
                variant_id=variant.pk,
                weight=variant.weight,
                expected_share=share,
            )
        )
    groups.append(
        GroupReport(
            key=HOLDOUT,
            name="Holdout",
            role=HOLDOUT,
            variant_id=None,
            weight=None,
            expected_share=holdout_share,
        )
    )

    for group in groups:
        key = (campaign.pk, group.variant_id)
        exposed = exposures.get(key, {})
        for name in (
            "exposures",
            "users",
            "suppressed",
            "delivered",
            "displayed",
            "opened",
            "clicked",
            "dismissed",
        ):
            setattr(group, name, int(exposed.get(name) or 0))
        group.sent = group.exposures - group.suppressed
        group.first_exposed_at = exposed.get("first_exposed_at")
        converted = conversions.get(key, {})
        group.orders = int(converted.get("orders") or 0)
        group.converters = int(converted.get("converters") or 0)
    by_variant = {group.variant_id: group for group in groups}
    for row in revenue:
        group_or_none = by_variant.get(row["group_variant"])
        if group_or_none is None:  # a variant deleted since: its numbers cannot be shown in a row
            continue
        if row["currency"] == currency:
            group_or_none.revenue = Decimal(row["revenue"]).quantize(MONEY)
            group_or_none.revenue_squares = Decimal(row["revenue_squares"])
        else:
            group_or_none.revenue_other_currencies[row["currency"]] = Decimal(row["revenue"]).quantize(MONEY)

    for group in groups:
        group.conversion_rate = group.converters / group.users if group.users else None
        group.conversion_rate_ci = analytics.wilson_interval(successes=group.converters, trials=group.users)
        if group.users:
            group.revenue_per_user = (group.revenue / group.users).quantize(MONEY)
        if group.exposures:
            group.revenue_per_exposure = (group.revenue / group.exposures).quantize(MONEY)

    control = next((g for g in groups if g.role == CONTROL), None)
    holdout = groups[-1]
    # The field's validators keep it at 0.01 pp or more; a row written around them must not break the page.
    mde = max(float(campaign.minimum_detectable_effect) / 100, MIN_DETECTABLE_EFFECT)
    looked_at = min(generated_at, period.end) if period.end else generated_at
    for group in groups:
        if group.role == TREATMENT and control is not None:
            group.vs_control = _compare(group, control, with_increment=False, mde=mde, looked_at=looked_at)
        if group.role != HOLDOUT:
            group.vs_holdout = _compare(group, holdout, with_increment=True, mde=mde, looked_at=looked_at)

    treated = _pooled([g for g in groups if g.role != HOLDOUT])
    incremental = _compare(treated, holdout, with_increment=True, mde=mde, looked_at=looked_at)
    srm = _srm(campaign=campaign, groups=groups)
    funnel = {
        "exposures": treated.exposures,
        "users": treated.users,
        "sent": treated.sent,
        "delivered": treated.delivered,
        "displayed": treated.displayed,
        "clicked": treated.clicked,
        "dismissed": treated.dismissed,
        "orders": treated.orders,
        "converters": treated.converters,
    }
    return CampaignReport(
        campaign_id=campaign.pk,
        campaign_name=campaign.name,
        campaign_status=campaign.status,
        holdout_percent=Decimal(campaign.holdout_percent or 0),
        period=period,
        currency=currency,
        groups=groups,
        funnel=funnel,
        srm=srm,
        incremental=incremental,
        generated_at=generated_at,
        minimum_detectable_effect=mde,
    )


# The per-group counters, in the order every report format lists them (JSON, CSV, XLSX).
COUNTS = (
    "exposures",
    "users",
    "sent",
    "suppressed",
    "delivered",
    "displayed",
    "opened",
    "clicked",
    "dismissed",
    "orders",
    "converters",
)


def _pooled(groups: Sequence[GroupReport]) -> GroupReport:
    """Every treated shopper together (all variants, control included): the campaign against nothing."""
    pooled = GroupReport(
        key="treated", name="All variants", role=TREATMENT, variant_id=None, weight=None, expected_share=0
    )
    for group in groups:
        for name in (*COUNTS, "revenue", "revenue_squares"):
            setattr(pooled, name, getattr(pooled, name) + getattr(group, name))
    firsts = [g.first_exposed_at for g in groups if g.first_exposed_at is not None]
    pooled.first_exposed_at = min(firsts) if firsts else None
    return pooled


def _compare(
    group: GroupReport, baseline: GroupReport, *, with_increment: bool, mde: float, looked_at: datetime
) -> dict[str, Any] | None:
    comparison = analytics.proportions_compare(
        successes=group.converters,
        trials=group.users,
        baseline_successes=baseline.converters,
        baseline_trials=baseline.users,
    )
    if comparison is None:
        return None
    result: dict[str, Any] = {
        "baseline": baseline.key,
        "absolute_lift": comparison.absolute_lift,
        "relative_lift": comparison.relative_lift,
        "relative_lift_ci": comparison.relative_lift_ci,
        "p_value": comparison.p_value,
        "test": comparison.test,
        "probability_to_beat": analytics.probability_to_beat(
            successes=group.converters,
            trials=group.users,
            baseline_successes=baseline.converters,
            baseline_trials=baseline.users,
        ),
        **_sequential(group, baseline, mde=mde, looked_at=looked_at),
    }
    if with_increment:
        per_user = analytics.mean_difference(
            count=group.users,
            total=float(group.revenue),
            total_squares=float(group.revenue_squares),
            baseline_count=baseline.users,
            baseline_total=float(baseline.revenue),
            baseline_total_squares=float(baseline.revenue_squares),
        )
        assert per_user is not None  # both groups have shoppers, or proportions_compare returned None
        # What the group earned beyond what the same shoppers would have earned with no message.
        result["incremental_conversions"] = comparison.absolute_lift * group.users
        result["incremental_revenue"] = _money(per_user.difference * group.users)
        result["incremental_revenue_ci"] = (
            analytics.Interval(low=per_user.ci.low * group.users, high=per_user.ci.high * group.users)
            if per_user.ci
            else None
        )
    return result


def _sequential(
    group: GroupReport, baseline: GroupReport, *, mde: float, looked_at: datetime
) -> dict[str, Any]:
    """The always-valid comparison of conversion rates (absolute difference), the fixed-horizon interval
    of the same difference beside it, the power reached for the planned minimum effect, and the verdict."""
    rate, baseline_rate = group.converters / group.users, baseline.converters / baseline.users
    variance = rate * (1 - rate) / group.users + baseline_rate * (1 - baseline_rate) / baseline.users
    half_width = analytics.fixed_half_width(variance=variance)
    sequential = analytics.sequential_difference(
        successes=group.converters,
        trials=group.users,
        baseline_successes=baseline.converters,
        baseline_trials=baseline.users,
        mixing_sd=mde,
    )
    assert sequential is not None  # both groups have shoppers (checked by the caller) and mde > 0
    growth = analytics.growth_to_resolve(
        baseline_rate=baseline_rate, trials=group.users, baseline_trials=baseline.users, effect=mde
    )
    starts = [g.first_exposed_at for g in (group, baseline) if g.first_exposed_at is not None]
    days_so_far = max((looked_at - min(starts)).total_seconds() / 86400, 1.0) if starts else None
    days_left = (
        math.ceil(days_so_far * (growth - 1)) if growth is not None and days_so_far is not None else None
    )
    return {
        "baseline_name": baseline.name,
        "absolute_lift_ci": analytics.Interval(
            low=sequential.difference - half_width, high=sequential.difference + half_width
        ),
        "always_valid": {
            "absolute_lift_ci": sequential.interval,
            "p_value": sequential.p_value,
        },
        "power": analytics.power_reached(
            baseline_rate=baseline_rate, trials=group.users, baseline_trials=baseline.users, effect=mde
        ),
        "days_to_decision": days_left,
        "verdict": verdict_text(
            name=group.name,
            baseline=baseline.name,
            sequential=sequential,
            days_left=days_left,
            mde=mde,
        ),
    }


def verdict_text(
    *, name: str, baseline: str, sequential: analytics.SequentialComparison, days_left: int | None, mde: float
) -> str:
    """The verdict in words, from the always-valid interval only (so it may be read any day)."""
    interval = sequential.interval
    if interval is not None and (interval.low > 0 or interval.high < 0):
        wins = interval.low > 0
        return (
            f"{name} {'beats' if wins else 'loses to'} {baseline.lower()}: "
            f"{sequential.difference * 100:+.1f} pp, always-valid 95% interval "
            f"[{_points(interval.low)}, {_points(interval.high)}]"
        )
    if interval is not None and -mde < interval.low and interval.high < mde:
        return (
            f"No difference as large as the planned {mde * 100:.2g} pp: always-valid 95% interval "
            f"[{interval.low * 100:.1f}, {interval.high * 100:.1f}]"
        )
    if days_left is None:
        return "No decision yet; too few conversions to say how long it will take"
    return (
        f"No decision yet; at today's rate about {days_left} more "
        f"day{'s' if days_left != 1 else ''} for the planned minimum effect ({mde * 100:.2g} pp)"
    )


def _points(rate: float) -> str:
    """A difference of rates in percentage points, one decimal; two when one would read as 0.0 (an
    interval "[0.0, 7.0]" that excludes zero would look as if it touched it)."""
    points = rate * 100
    return f"{points:.1f}" if round(points, 1) != 0 or points == 0 else f"{points:.2f}"


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(MONEY)


def _srm(*, campaign: Campaign, groups: Sequence[GroupReport]) -> analytics.SampleRatioCheck:
    considered = [g for g in groups if g.expected_share > 0 or g.users > 0]
    if campaign.use_bandit:
        # A bandit moves traffic between the treatment variants on purpose; the control and the holdout
        # keep their fixed shares, so the check is of those two against the treatment variants together.
        treated = [g for g in considered if g.role == TREATMENT]
        considered = [g for g in considered if g.role != TREATMENT]
        if treated:
            considered.append(_pooled(treated))
            considered[-1].expected_share = sum(g.expected_share for g in treated)
    return analytics.sample_ratio_check(
        observed=[g.users for g in considered], expected_shares=[g.expected_share for g in considered]
    )


# --- Over time: the same groups, day by day ----------------------------------------------------------


@dataclass(frozen=True)
class DailyPoint:
    """One group on one day (UTC). Shoppers, converters and revenue are cumulative: what a look taken at
    the end of that day would have seen of the cohort exposed so far."""

    day: date
    exposures: int  # that day's
    users: int
    converters: int
    revenue: Decimal
    conversion_rate: float | None
    conversion_rate_ci: analytics.Interval | None
    revenue_per_user: float | None
    revenue_per_user_ci: analytics.Interval | None


@dataclass(frozen=True)
class GroupSeries:
    key: str
    name: str
    role: str
    points: list[DailyPoint]


@dataclass(frozen=True)
class LiftPoint:
    day: date
    difference: float | None
    fixed_ci: analytics.Interval | None
    always_valid_ci: analytics.Interval | None


@dataclass(frozen=True)
class LiftSeries:
    name: str
    baseline: str
    points: list[LiftPoint]


@dataclass(frozen=True)
class CampaignTimeline:
    days: list[date]
    groups: list[GroupSeries]
    lifts: list[LiftSeries]


def _daily_rows(sql: str, params: Sequence[Any]) -> dict[tuple[int | None, date], tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}


def daily_counts(
    *, campaign_id: int, period: ReportPeriod, currency: str
) -> dict[str, dict[tuple[int | None, date], tuple[Any, ...]]]:
    """Per (variant or holdout, UTC day): exposures; shoppers first exposed; shoppers first converting;
    revenue in ``currency`` and its per-shopper variance increment. Four grouped queries.

    The variance term needs Σ over shoppers of (their revenue so far)² on every day; it grows only on the
    days a shopper orders, by cum² - (cum - that day's revenue)², so summing those increments per day
    keeps the query grouped instead of one row per shopper and day.
    """
    intervention = INTERVENTION_TABLE
    conversion = Conversion._meta.db_table
    where, params = _intervention_filter(campaign_ids=[campaign_id], period=period)
    conditions = " AND ".join(where)
    group = "CASE WHEN i.is_holdout THEN NULL ELSE i.variant_id END"
    converted_group = "CASE WHEN c.is_holdout THEN NULL ELSE c.variant_id END"
    converted_where = f"{conditions} AND (c.is_holdout OR c.variant_id IS NOT NULL)"
    utc_day = "(({}) AT TIME ZONE 'UTC')::date"
    exposures = f"""
        SELECT {group}, {utc_day.format("i.created_at")}, COUNT(*)
        FROM {intervention} i WHERE {conditions} GROUP BY 1, 2
    """  # noqa: S608  (table names come from the models, values are parameters)
    users = f"""
        SELECT g, first_day, COUNT(*) FROM (
            SELECT {group} AS g, i.user_id, {utc_day.format("MIN(i.created_at)")} AS first_day
            FROM {intervention} i WHERE {conditions} GROUP BY 1, 2
        ) firsts GROUP BY 1, 2
    """  # noqa: S608
    converters = f"""
        SELECT g, first_day, COUNT(*) FROM (
            SELECT {converted_group} AS g, c.user_id,
                   {utc_day.format("GREATEST(MIN(c.occurred_at), MIN(i.created_at))")} AS first_day
            FROM {conversion} c JOIN {intervention} i ON i.id = c.intervention_id
            WHERE {converted_where} GROUP BY 1, 2
        ) firsts GROUP BY 1, 2
    """  # noqa: S608
    revenue = f"""
        SELECT g, day, SUM(revenue), SUM(running * running - (running - revenue) * (running - revenue))
        FROM (
            SELECT g, day, revenue, SUM(revenue) OVER (PARTITION BY g, user_id ORDER BY day) AS running
            FROM (
                SELECT {converted_group} AS g, c.user_id,
                       {utc_day.format("GREATEST(c.occurred_at, i.created_at)")} AS day,
                       SUM(c.revenue) AS revenue
                FROM {conversion} c JOIN {intervention} i ON i.id = c.intervention_id
                WHERE {converted_where} AND c.currency = %s GROUP BY 1, 2, 3
            ) per_day
        ) running GROUP BY 1, 2
    """  # noqa: S608
    return {
        "exposures": _daily_rows(exposures, params),
        "users": _daily_rows(users, params),
        "converters": _daily_rows(converters, params),
        "revenue": _daily_rows(revenue, [*params, currency]),
    }


def campaign_timeline(*, report: CampaignReport, period: ReportPeriod) -> CampaignTimeline:
    """The report's groups day by day, and each comparison's cumulative lift (variants against control
    when there is one, else against the holdout; the campaign against the holdout) with its
    fixed-horizon and always-valid intervals."""
    counts = daily_counts(campaign_id=report.campaign_id, period=period, currency=report.currency)
    seen = [day for rows in counts.values() for _, day in rows]
    if not seen:
        return CampaignTimeline(days=[], groups=[], lifts=[])
    first, last = min(seen), max(seen)
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    series = [_group_series(group, days=days, counts=counts) for group in report.groups]
    by_key = {s.key: s for s in series}
    lifts: list[LiftSeries] = []
    control = report.control
    baseline = control if control is not None else report.holdout
    for group in report.groups:
        if group.role == TREATMENT or (group.role == CONTROL and control is None):
            lifts.append(
                _lift_series(by_key[group.key], by_key[baseline.key], mde=report.minimum_detectable_effect)
            )
    return CampaignTimeline(days=days, groups=series, lifts=lifts)


def _group_series(
    group: GroupReport, *, days: list[date], counts: dict[str, dict[tuple[int | None, date], tuple[Any, ...]]]
) -> GroupSeries:
    users = converters = 0
    revenue, squares = Decimal("0"), Decimal("0")
    points = []
    for day in days:
        key = (group.variant_id, day)
        users += int(counts["users"].get(key, (0,))[0])
        converters += int(counts["converters"].get(key, (0,))[0])
        day_revenue, day_squares = counts["revenue"].get(key, (Decimal("0"), Decimal("0")))
        revenue += Decimal(day_revenue)
        squares += Decimal(day_squares)
        per_user = analytics.mean_interval(count=users, total=float(revenue), total_squares=float(squares))
        points.append(
            DailyPoint(
                day=day,
                exposures=int(counts["exposures"].get(key, (0,))[0]),
                users=users,
                converters=converters,
                revenue=revenue.quantize(MONEY),
                conversion_rate=converters / users if users else None,
                conversion_rate_ci=analytics.wilson_interval(successes=converters, trials=users),
                revenue_per_user=float(revenue) / users if users else None,
                revenue_per_user_ci=per_user,
            )
        )
    return GroupSeries(key=group.key, name=group.name, role=group.role, points=points)


def _lift_series(group: GroupSeries, baseline: GroupSeries, *, mde: float) -> LiftSeries:
    points = []
    for treated, base in zip(group.points, baseline.points, strict=True):
        sequential = analytics.sequential_difference(
            successes=treated.converters,
            trials=treated.users,
            baseline_successes=base.converters,
            baseline_trials=base.users,
            mixing_sd=mde,
        )
        if sequential is None:
            points.append(LiftPoint(day=treated.day, difference=None, fixed_ci=None, always_valid_ci=None))
            continue
        rate, base_rate = treated.converters / treated.users, base.converters / base.users
        half = analytics.fixed_half_width(
            variance=rate * (1 - rate) / treated.users + base_rate * (1 - base_rate) / base.users
        )
        points.append(
            LiftPoint(
                day=treated.day,
                difference=sequential.difference,
                fixed_ci=analytics.Interval(
                    low=sequential.difference - half, high=sequential.difference + half
                )
                if half > 0
                else None,
                always_valid_ci=sequential.interval,
            )
        )
    return LiftSeries(name=group.name, baseline=baseline.name, points=points)


# --- Overview: every campaign on one line ------------------------------------------------------------


@dataclass(frozen=True)
class OverviewRow:
    campaign_id: int
    name: str
    status: str
    exposures: int
    users: int
    converters: int
    conversion_rate: float | None
    currency: str
    incremental_revenue: Decimal | None
    incremental_revenue_ci: analytics.Interval | None
    verdict: str
    decided: str  # "better", "worse" or "" (no decision): how the verdict reads at a glance


def overview_row(report: CampaignReport) -> OverviewRow:
    """A campaign's line on the overview: what it reached, what it earned against its holdout, and the
    verdict — of the campaign against its holdout when it has one, else of its best-exposed variant
    against control."""
    treated = report.funnel
    incremental = report.incremental
    comparison = incremental
    if comparison is None:
        compared = [g for g in report.variants if g.vs_control is not None]
        compared.sort(key=lambda g: -g.users)
        comparison = compared[0].vs_control if compared else None
    verdict = comparison["verdict"] if comparison else "Nothing to compare yet"
    interval = comparison["always_valid"]["absolute_lift_ci"] if comparison else None
    decided = ""
    if interval is not None and interval.low > 0:
        decided = "better"
    elif interval is not None and interval.high < 0:
        decided = "worse"
    users = int(treated["users"])
    return OverviewRow(
        campaign_id=report.campaign_id,
        name=report.campaign_name,
        status=report.campaign_status,
        exposures=int(treated["exposures"]),
        users=users,
        converters=int(treated["converters"]),
        conversion_rate=int(treated["converters"]) / users if users else None,
        currency=report.currency,
        incremental_revenue=incremental["incremental_revenue"] if incremental else None,
        incremental_revenue_ci=incremental.get("incremental_revenue_ci") if incremental else None,
        verdict=verdict,
        decided=decided,
    )
