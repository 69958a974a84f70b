"""The honest daily look on a real report: always-valid intervals beside fixed-horizon ones, the power
reached for the campaign's minimum detectable effect, and the verdict in words (report, API, page)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from django.urls import reverse

from campaigns.models import Campaign
from tests import fixtures as f
from tests.fixtures import expose, order
from tracking import analytics
from tracking.attribution import conversions_record
from tracking.reports import ReportPeriod, campaign_report

pytestmark = pytest.mark.django_db


def _ab(*, control_converters: int, b_converters: int, users: int, mde: str = "1.00") -> Campaign:
    """Control and B with ``users`` shoppers each, exposed 20 hours ago (inside the attribution window)."""
    campaign = f.campaign(
        channels=["email"],
        variants=[{"name": "Control", "weight": 1, "is_control": True}, "B"],
        minimum_detectable_effect=Decimal(mde),
    )
    control, b = campaign.variants.order_by("pk")
    control_users = [f.unique("c") for _ in range(users)]
    b_users = [f.unique("b") for _ in range(users)]
    expose(campaign=campaign, variant=control, users=control_users, minutes_ago=20 * 60)
    expose(campaign=campaign, variant=b, users=b_users, minutes_ago=20 * 60)
    conversions_record(
        orders=[order(u, "10.00") for u in control_users[:control_converters]]
        + [order(u, "10.00") for u in b_users[:b_converters]]
    )
    return campaign


def test_it_declares_a_winner_only_when_the_always_valid_interval_excludes_zero():
    # given B converting 12 % against control's 5 %, on 1,000 shoppers each
    campaign = _ab(control_converters=50, b_converters=120, users=1000)

    # when the report is built
    report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())
    b = report.variants[1]

    # then the always-valid interval is wider than the fixed-horizon one, excludes zero, and the verdict
    # says so in points
    assert b.vs_control is not None
    always_valid = b.vs_control["always_valid"]
    expected = analytics.sequential_difference(
        successes=120, trials=1000, baseline_successes=50, baseline_trials=1000, mixing_sd=0.01
    )
    assert expected is not None
    assert always_valid["absolute_lift_ci"] == expected.interval
    assert always_valid["p_value"] == pytest.approx(expected.p_value)
    fixed = b.vs_control["absolute_lift_ci"]
    assert always_valid["absolute_lift_ci"].low < fixed.low
    assert always_valid["absolute_lift_ci"].low > 0
    low, high = always_valid["absolute_lift_ci"].low * 100, always_valid["absolute_lift_ci"].high * 100
    assert b.vs_control["verdict"] == (
        f"B beats control: +7.0 pp, always-valid 95% interval [{low:.1f}, {high:.1f}]"
    )
    # (a 1-point effect on a 5 % rate is still hard to see with 1,000 shoppers a group)
    assert b.vs_control["power"] == pytest.approx(
        analytics.power_reached(baseline_rate=0.05, trials=1000, baseline_trials=1000, effect=0.01)
    )
    assert 0.1 < b.vs_control["power"] < 0.2


def test_it_says_how_many_more_days_when_there_is_no_decision_yet():
    # given 5.5 % against 5 % on 1,000 shoppers each, within the first day, planning for a 1-point effect
    campaign = _ab(control_converters=50, b_converters=55, users=1000)

    # when the report is built
    report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())
    b = report.variants[1]

    # then no decision, with the days estimated from today's inflow of shoppers
    assert b.vs_control is not None
    growth = analytics.growth_to_resolve(baseline_rate=0.05, trials=1000, baseline_trials=1000, effect=0.01)
    assert growth is not None
    days = b.vs_control["days_to_decision"]
    assert days == math.ceil(growth - 1)  # a first day counts as one whole day
    assert b.vs_control["verdict"] == (
        f"No decision yet; at today's rate about {days} more days for the planned minimum effect (1 pp)"
    )
    assert b.vs_control["power"] < 0.5


def test_it_shows_the_verdict_on_the_page_and_in_the_api(marketer_client, api_client):
    # given the clear winner, planned for a 2-point effect
    campaign = _ab(control_converters=50, b_converters=120, users=1000, mde="2.00")

    # when the results page and the report API are read
    page = marketer_client.get(reverse("admin-campaign-report", args=[campaign.pk]))
    body = api_client(scopes=["reports"]).get(f"/api/v1/campaigns/{campaign.pk}/report").json()

    # then both carry the verdict and the always-valid interval beside the fixed-horizon one
    html = page.content.decode()
    assert 'id="ie-verdict"' in html
    assert "B beats control: +7.0 pp, always-valid 95% interval [" in html
    assert "Power for 2 pp" in html
    b = body["variants"][1]
    assert body["campaign"]["minimum_detectable_effect"] == pytest.approx(0.02)
    assert b["vs_control"]["always_valid"]["absolute_lift_ci"]["low"] > 0
    assert (
        b["vs_control"]["absolute_lift_ci"]["low"]
        > b["vs_control"]["always_valid"]["absolute_lift_ci"]["low"]
    )
    assert b["vs_control"]["verdict"].startswith("B beats control: +7.0 pp")
