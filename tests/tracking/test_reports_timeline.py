"""The campaign over time: daily exposures, cumulative rates and revenue with intervals, the cumulative
difference with its always-valid band, and the SVG charts of the results page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from interventions.models import Intervention
from tests import fixtures as f
from tests.fixtures import expose
from tracking import analytics
from tracking.attribution import OrderPlaced, conversions_record
from tracking.reports import ReportPeriod, campaign_report, campaign_timeline

pytestmark = pytest.mark.django_db

CONTROL = {"name": "Control", "weight": 1, "is_control": True}


def _order(user_id: str, revenue: str, at: datetime) -> OrderPlaced:
    return OrderPlaced(
        order_id=f.unique("o"), user_id=user_id, revenue=Decimal(revenue), currency="EUR", occurred_at=at
    )


def test_it_follows_each_group_day_by_day_and_ends_where_the_report_ends():
    # given Control and B exposed over three UTC days (10 shoppers each per day), with orders an hour
    # after exposure: B converts 3 a day (one shopper twice), Control 1 a day
    campaign = f.campaign(
        channels=["email"], variants=[{"name": "Control", "weight": 1, "is_control": True}, "B"]
    )
    control, b = campaign.variants.order_by("pk")
    now = timezone.now()
    hours_ago = [50, 26, 2]
    orders: list[OrderPlaced] = []
    for hours in hours_ago:
        exposed_at = now - timedelta(hours=hours)
        c_users = [f.unique("c") for _ in range(10)]
        b_users = [f.unique("b") for _ in range(10)]
        expose(campaign=campaign, variant=control, users=c_users, minutes_ago=hours * 60)
        expose(campaign=campaign, variant=b, users=b_users, minutes_ago=hours * 60)
        at = exposed_at + timedelta(hours=1)
        orders += [_order(c_users[0], "10.00", at)]
        orders += [_order(u, "20.00", at) for u in b_users[:3]] + [_order(b_users[0], "5.00", at)]
    conversions_record(orders=orders)
    report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())

    # when the timeline is built
    timeline = campaign_timeline(report=report, period=ReportPeriod())

    # then there is one point per UTC day from the first exposure to the last order, the counts are
    # cumulative and the last point is the report itself
    exposure_days = sorted({(now - timedelta(hours=h)).astimezone(UTC).date() for h in hours_ago})
    order_days = {(now - timedelta(hours=h - 1)).astimezone(UTC).date() for h in hours_ago}
    assert timeline.days[0] == exposure_days[0]
    assert timeline.days[-1] == max(order_days | set(exposure_days))
    control_series, b_series = timeline.groups[0], timeline.groups[1]
    assert sum(p.exposures for p in b_series.points) == 30
    assert [p.users for p in b_series.points] == sorted(p.users for p in b_series.points)
    b_report = report.variants[1]
    last = b_series.points[-1]
    assert (last.users, last.converters, last.revenue) == (
        b_report.users,
        b_report.converters,
        b_report.revenue,
    )
    assert (last.users, last.converters, last.revenue) == (30, 9, Decimal("195.00"))
    assert last.conversion_rate_ci == analytics.wilson_interval(successes=9, trials=30)
    per_shopper = [25.0, 20.0, 20.0] * 3 + [0.0] * 21
    expected = analytics.mean_interval(
        count=30, total=sum(per_shopper), total_squares=sum(v * v for v in per_shopper)
    )
    assert last.revenue_per_user_ci is not None
    assert expected is not None
    assert last.revenue_per_user_ci.low == pytest.approx(expected.low)
    assert last.revenue_per_user_ci.high == pytest.approx(expected.high)
    assert control_series.points[-1].converters == 3

    # and the difference B - Control carries the always-valid interval of each day's cumulative counts
    (lift,) = timeline.lifts
    assert (lift.name, lift.baseline) == ("B", "Control")
    final = lift.points[-1]
    assert final.difference == pytest.approx(9 / 30 - 3 / 30)
    sequential = analytics.sequential_difference(
        successes=9, trials=30, baseline_successes=3, baseline_trials=30, mixing_sd=0.01
    )
    assert sequential is not None
    assert final.always_valid_ci == sequential.interval
    assert final.fixed_ci is not None
    assert final.always_valid_ci is not None
    assert final.always_valid_ci.low < final.fixed_ci.low


def test_it_draws_the_charts_over_time_on_the_results_page(marketer_client):
    # given Control and B exposed yesterday and today, with one order each
    campaign = f.campaign(
        channels=["email"], variants=[{"name": "Control", "weight": 1, "is_control": True}, "B"]
    )
    control, b = campaign.variants.order_by("pk")
    c_rows = expose(
        campaign=campaign, variant=control, users=[f.unique("c") for _ in range(5)], minutes_ago=30 * 60
    )
    b_rows = expose(campaign=campaign, variant=b, users=[f.unique("b") for _ in range(5)], minutes_ago=60)
    conversions_record(
        orders=[
            _order(c_rows[0].user_id, "10.00", timezone.now() - timedelta(hours=29)),
            _order(b_rows[0].user_id, "10.00", timezone.now()),
        ]
    )
    assert Intervention.objects.filter(campaign=campaign).count() == 10

    # when a marketer opens the results
    html = marketer_client.get(reverse("admin-campaign-report", args=[campaign.pk])).content.decode()

    # then four line charts are drawn server-side (exposures, conversion, revenue per shopper, B vs
    # Control with both bands), each with a legend, and still no script
    section = html.split('id="ie-over-time"')[1].split("</section>")[0]
    assert section.count('<svg class="ie-chart ie-chart--time"') == 4
    for key in ("exposures", "conversion", "revenue", "lift-0"):
        assert f'id="ie-time-{key}"' in section
    assert "B vs Control: difference in conversion rate so far (pp)" in section
    assert 'class="ie-band ie-band--valid ie-band--outline"' in section
    assert 'data-trace="Holdout"' in section
    assert "<script" not in section
