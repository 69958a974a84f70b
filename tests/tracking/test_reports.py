"""Campaign reports on generated exposures, tracking events and attributed orders (incl. the holdout)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from scipy import stats

from campaigns.models import Campaign, Variant
from interventions.models import Intervention
from tests import fixtures as f
from tests.fixtures import build_experiment, expose
from tracking.analytics import wilson_interval
from tracking.reports import ReportPeriod, campaign_report, campaign_reports, report_period_parse

pytestmark = pytest.mark.django_db


def test_it_counts_the_funnel_per_variant_and_the_holdout():
    # given the experiment
    experiment = build_experiment()

    # when its report is built
    report = campaign_report(campaign_id=experiment.campaign.pk, period=ReportPeriod())

    # then A, Control and the holdout show what happened to them, revenue in EUR with USD aside
    a, control = report.variants
    holdout = report.holdout
    assert (a.name, a.role, control.role) == ("A", "treatment", "control")
    assert report.currency == "EUR"
    assert (a.exposures, a.users, a.sent, a.delivered) == (11, 10, 11, 10)
    assert (a.displayed, a.opened, a.clicked, a.dismissed) == (3, 1, 2, 1)
    assert (a.orders, a.converters, a.revenue) == (5, 4, Decimal("200.00"))
    assert a.revenue_other_currencies == {"USD": Decimal("12.50")}
    assert a.conversion_rate == pytest.approx(0.4)
    assert a.conversion_rate_ci == wilson_interval(successes=4, trials=10)
    assert (a.revenue_per_user, a.revenue_per_exposure) == (Decimal("20.00"), Decimal("18.18"))
    assert (control.users, control.converters, control.revenue) == (10, 2, Decimal("80.00"))
    assert (holdout.exposures, holdout.users, holdout.sent, holdout.suppressed) == (5, 5, 0, 5)
    assert (holdout.converters, holdout.revenue) == (1, Decimal("20.00"))
    assert report.funnel == {
        "exposures": 21,
        "users": 20,
        "sent": 21,
        "delivered": 20,
        "displayed": 3,
        "clicked": 2,
        "dismissed": 1,
        "orders": 7,
        "converters": 6,
    }


def test_it_compares_with_control_and_holdout_and_says_what_the_campaign_earned():
    # given the experiment
    experiment = build_experiment()

    # when its report is built
    report = campaign_report(campaign_id=experiment.campaign.pk, period=ReportPeriod())
    a, control = report.variants

    # then A doubles Control's rate (Fisher's test on these small counts), and beats the holdout by
    # 2 conversions and 160 EUR; all variants together earned 200 EUR more than doing nothing
    assert a.vs_control is not None
    assert a.vs_control["relative_lift"] == pytest.approx(1.0)
    assert a.vs_control["test"] == "fisher"
    assert a.vs_control["p_value"] == pytest.approx(stats.fisher_exact([[4, 6], [2, 8]]).pvalue)
    assert 0.5 < a.vs_control["probability_to_beat"] < 1
    assert control.vs_control is None
    assert a.vs_holdout is not None
    assert a.vs_holdout["incremental_conversions"] == pytest.approx(2.0)
    assert a.vs_holdout["incremental_revenue"] == Decimal("160.00")
    ci = a.vs_holdout["incremental_revenue_ci"]
    assert ci.low < 160 < ci.high
    assert report.incremental is not None
    assert report.incremental["incremental_conversions"] == pytest.approx(2.0)
    assert report.incremental["incremental_revenue"] == Decimal("200.00")
    assert report.srm.mismatch is False


def test_it_reports_only_exposures_inside_the_period():
    # given the experiment and an A shopper exposed ten days ago
    experiment = build_experiment()
    expose(
        campaign=experiment.campaign, variant=experiment.a, users=[f.unique("old")], minutes_ago=10 * 24 * 60
    )

    # when the report covers the last three days, and when it covers everything
    since = (timezone.now() - timedelta(days=3)).date().isoformat()
    recent = campaign_report(
        campaign_id=experiment.campaign.pk, period=report_period_parse(start=since, end=None)
    )
    everything = campaign_report(campaign_id=experiment.campaign.pk, period=ReportPeriod())

    # then the old exposure counts only in the second
    assert recent.variants[0].users == 10
    assert everything.variants[0].users == 11


def test_it_warns_of_a_sample_ratio_mismatch():
    # given two variants weighted 50/50 and no holdout, but 300 shoppers in one and 200 in the other
    campaign = f.campaign_live(channels=["email"], variants=("A", "B"))
    a, b = campaign.variants.order_by("pk")
    expose(campaign=campaign, variant=a, users=[f.unique("a") for _ in range(300)])
    expose(campaign=campaign, variant=b, users=[f.unique("b") for _ in range(200)])

    # when the report is built
    report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())

    # then it warns, with the chi-square p-value
    assert report.srm.mismatch is True
    assert report.srm.p_value == pytest.approx(stats.chisquare([300, 200]).pvalue)


def test_it_checks_only_control_and_holdout_shares_of_a_bandit_campaign():
    # given a bandit campaign (control, A, B weighted 1:1:1, 10% holdout) that moved most treatment
    # traffic to B, while control and holdout got their shares
    campaign = f.campaign_live(
        channels=["email"],
        variants=[{"name": "control", "weight": 1, "is_control": True}, "A", "B"],
        use_bandit=True,
        holdout_percent=Decimal("10"),
    )
    control, a, b = (campaign.variants.get(name=name) for name in ("control", "A", "B"))
    expose(campaign=campaign, variant=control, users=[f.unique("c") for _ in range(300)])
    expose(campaign=campaign, variant=a, users=[f.unique("a") for _ in range(60)])
    expose(campaign=campaign, variant=b, users=[f.unique("b") for _ in range(540)])
    expose(campaign=campaign, variant=control, users=[f.unique("h") for _ in range(100)], holdout=True)

    # when the report is built
    report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())

    # then the split between the treatment variants is not a mismatch; the groups checked are control,
    # holdout and the treatment variants together, against 30% / 10% / 60%
    assert report.srm.mismatch is False
    assert report.srm.p_value == pytest.approx(stats.chisquare([300, 100, 600], [300, 100, 600]).pvalue)

    # and when the control is starved, it is
    expose(campaign=campaign, variant=b, users=[f.unique("b") for _ in range(300)])
    starved = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())
    assert starved.srm.mismatch is True
    assert starved.srm.p_value == pytest.approx(stats.chisquare([300, 100, 900], [390, 130, 780]).pvalue)


def test_it_aggregates_many_campaigns_in_a_fixed_number_of_queries():
    # given three campaigns with exposures
    campaigns = []
    for _ in range(3):
        campaign = f.campaign_live(channels=["email"], variants=("A",))
        expose(campaign=campaign, variant=campaign.variants.get(), users=[f.unique("u") for _ in range(3)])
        campaigns.append(campaign)
    loaded = list(Campaign.objects.filter(pk__in=[c.pk for c in campaigns]).prefetch_related("variants"))

    # when their reports are built together
    with CaptureQueriesContext(connection) as queries:
        reports = campaign_reports(campaigns=loaded, period=ReportPeriod())

    # then three queries did it, whatever the number of campaigns
    assert [r.variants[0].users for r in reports] == [3, 3, 3]
    assert len(queries) == 3


def test_it_refuses_a_period_that_is_not_dates_or_ends_before_it_starts():
    from core.errors import ApplicationError

    # when the bounds are not dates, or in the wrong order
    with pytest.raises(ApplicationError) as not_a_date:
        report_period_parse(start="yesterday", end=None)
    with pytest.raises(ApplicationError) as reversed_period:
        report_period_parse(start="2026-11-02", end="2026-11-01")

    # then both are refused with a code a client can act on
    assert not_a_date.value.code == "invalid_date"
    assert reversed_period.value.code == "invalid_period"


def test_it_reads_dates_and_datetimes_with_offsets_even_unencoded():
    # when bounds are a date, an aware datetime, and one whose "+" a query string turned into a space
    day = report_period_parse(start="2026-11-01", end="2026-11-01")
    aware = report_period_parse(start="2026-11-01T10:00:00+01:00", end="2026-11-01T12:00:00 01:00")

    # then a date is the whole day in UTC, and both offsets are kept
    assert day == ReportPeriod(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC))
    plus_one = timezone.get_fixed_timezone(60)
    assert aware == ReportPeriod(
        start=datetime(2026, 11, 1, 10, tzinfo=plus_one), end=datetime(2026, 11, 1, 12, tzinfo=plus_one)
    )
    assert aware.start is not None
    assert aware.start.utcoffset() == timedelta(hours=1)


def test_it_counts_shoppers_assigned_but_not_sent_as_exposures_of_their_group():
    # given a control variant with nothing to show, an A shopper in quiet hours, and refusals made before
    # any assignment (consent, frequency cap: no variant)
    campaign = f.campaign_live(channels=["email"], variants=("A",))
    a = campaign.variants.get()
    control = Variant.objects.create(campaign=campaign, name="Control", weight=1, is_control=True)
    expose(campaign=campaign, variant=a, users=[f.unique("a") for _ in range(3)])
    for variant, reason in [
        (control, "control"),
        (control, "control"),
        (a, "quiet_hours"),
        (None, "consent"),
    ]:
        (row,) = expose(campaign=campaign, variant=variant, users=[f.unique("s")], delivered=False)
        Intervention.objects.filter(pk=row.pk).update(
            status=Intervention.Status.SUPPRESSED, suppression_reason=reason
        )

    # when the report is built
    report = campaign_report(campaign_id=campaign.pk, period=ReportPeriod())

    # then the control's and the quiet-hours shoppers count as exposed (not sent); the refusal counts nowhere
    by_name = {group.name: group for group in report.groups}
    assert (by_name["A"].exposures, by_name["A"].sent, by_name["A"].suppressed) == (4, 3, 1)
    assert (by_name["Control"].exposures, by_name["Control"].sent) == (2, 0)
    assert report.funnel["exposures"] == 6
