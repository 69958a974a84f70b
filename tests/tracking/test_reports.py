"""Campaign reports on generated exposures, tracking events and attributed orders (incl. the holdout)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from scipy import stats

from campaigns.models import Campaign, Variant
from interventions.models import Intervention
from personalization.models import Profile
from tests.delivery import factories as f
from tracking.analytics import wilson_interval
from tracking.attribution import OrderPlaced, conversions_record
from tracking.reports import ReportPeriod, campaign_report, campaign_reports, report_period_parse
from tracking.services import tracking_events_record

pytestmark = pytest.mark.django_db


def expose(
    *,
    campaign: Campaign,
    variant: Variant | None,
    users: list[str],
    holdout: bool = False,
    minutes_ago: float = 30,
    delivered: bool = True,
) -> list[Intervention]:
    """One intervention per shopper, as the decision path writes them (holdout ones suppressed)."""
    Profile.objects.bulk_create([Profile(user_id=u) for u in users], ignore_conflicts=True)
    profiles = {p.user_id: p for p in Profile.objects.filter(user_id__in=users)}
    created_at = timezone.now() - timedelta(minutes=minutes_ago)
    rows = [
        Intervention(
            campaign=campaign,
            variant=variant,
            profile=profiles[u],
            user_id=u,
            trigger_event_id=f.unique("evt"),
            trigger=campaign.trigger,
            channel="" if holdout else "email",
            status=Intervention.Status.SUPPRESSED
            if holdout
            else Intervention.Status.DELIVERED
            if delivered
            else Intervention.Status.PENDING,
            suppression_reason="holdout" if holdout else "",
            is_holdout=holdout,
            delivered_at=None if holdout or not delivered else created_at,
        )
        for u in users
    ]
    Intervention.objects.bulk_create(rows)
    # created_at is auto_now_add: move it afterwards, as an older exposure would have it.
    Intervention.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=created_at)
    return rows


def order(user_id: str, revenue: str, currency: str = "EUR") -> OrderPlaced:
    return OrderPlaced(
        order_id=f.unique("o"),
        user_id=user_id,
        revenue=Decimal(revenue),
        currency=currency,
        occurred_at=timezone.now(),
    )


@dataclass
class Experiment:
    campaign: Campaign
    a: Variant
    control: Variant
    a_users: list[str]
    control_users: list[str]
    holdout_users: list[str]


def build_experiment() -> Experiment:
    """A (10 shoppers, one exposed twice), Control (10, a plain reminder), holdout (5) at 20 %.

    A: 3 seen (one opened), 2 clicked, 1 dismissed; orders 100 + 50 (same shopper), 30, 20 EUR and 12.50 USD.
    Control: two orders of 40 EUR. Holdout: one order of 20 EUR.
    """
    campaign = f.campaign(channels=["email"], variants=("A",), holdout_percent=Decimal("20"))
    a = campaign.variants.get(name="A")
    control = Variant.objects.create(
        campaign=campaign,
        name="Control",
        weight=1,
        is_control=True,
        email_template=f.template(channel="email", title="Plain reminder"),
    )
    a_users = [f.unique("a") for _ in range(10)]
    control_users = [f.unique("c") for _ in range(10)]
    holdout_users = [f.unique("h") for _ in range(5)]
    a_rows = expose(campaign=campaign, variant=a, users=a_users)
    expose(campaign=campaign, variant=a, users=a_users[:1], minutes_ago=20, delivered=False)
    expose(campaign=campaign, variant=control, users=control_users)
    expose(campaign=campaign, variant=a, users=holdout_users, holdout=True)

    def event(row: Intervention, type: str, source: str = "webhook") -> dict[str, object]:
        return {"intervention_id": row.pk, "type": type, "source": source, "channel": "email"}

    tracking_events_record(
        events=[
            event(a_rows[0], "displayed"),
            event(a_rows[1], "displayed"),
            event(a_rows[1], "clicked"),
            event(a_rows[2], "opened"),
            event(a_rows[2], "clicked"),
            event(a_rows[2], "clicked"),
            event(a_rows[3], "dismissed"),
        ]
    )
    conversions_record(
        orders=[
            order(a_users[0], "100.00"),
            order(a_users[0], "50.00"),
            order(a_users[1], "30.00"),
            order(a_users[2], "20.00"),
            order(a_users[3], "12.50", "USD"),
            order(control_users[0], "40.00"),
            order(control_users[1], "40.00"),
            order(holdout_users[0], "20.00"),
        ]
    )
    return Experiment(campaign, a, control, a_users, control_users, holdout_users)


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
    campaign = f.campaign(channels=["email"], variants=("A", "B"))
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
    campaign = f.campaign(
        channels=["email"], variants=("control", "A", "B"), use_bandit=True, holdout_percent=Decimal("10")
    )
    Variant.objects.filter(campaign=campaign, name="control").update(is_control=True)
    control, a, b = campaign.variants.order_by("pk")
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
        campaign = f.campaign(channels=["email"], variants=("A",))
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
    campaign = f.campaign(channels=["email"], variants=("A",))
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
