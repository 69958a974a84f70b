"""The overview of every campaign: reach, conversion, incremental revenue, verdict; sorted, by period."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from tests import fixtures as f
from tests.fixtures import build_experiment, expose, order
from tracking.attribution import conversions_record

pytestmark = pytest.mark.django_db


def _winner() -> int:
    """A campaign whose variants convert 12 % against a holdout's 2 %, 1,000 shoppers each."""
    campaign = f.campaign(channels=["email"], variants=("Winner",), holdout_percent=Decimal("50"))
    variant = campaign.variants.get()
    treated = [f.unique("w") for _ in range(1000)]
    held = [f.unique("h") for _ in range(1000)]
    expose(campaign=campaign, variant=variant, users=treated)
    expose(campaign=campaign, variant=variant, users=held, holdout=True)
    conversions_record(
        orders=[order(u, "10.00") for u in treated[:120]] + [order(u, "10.00") for u in held[:20]]
    )
    return campaign.pk


def test_it_lists_every_campaign_with_its_verdict_sorted_by_a_column(marketer_client):
    # given the small experiment, a clear winner, and a campaign nobody saw yet
    experiment = build_experiment()
    winner = _winner()
    idle = f.campaign(channels=["email"], variants=("Idle",))
    url = reverse("admin-campaigns-overview")

    # when the overview is opened by exposures (the default), and by name
    by_exposures = marketer_client.get(url)
    by_name = marketer_client.get(url, {"o": "name"})
    by_incremental = marketer_client.get(url, {"o": "-incremental"})

    # then every campaign has a line, the winner's verdict names its always-valid interval, the
    # incremental revenue comes with its interval, and the order follows the column asked for
    assert by_exposures.status_code == 200
    rows = [item["row"] for item in by_exposures.context["rows"]]
    assert [row.campaign_id for row in rows] == [winner, experiment.campaign.pk, idle.pk]
    winning = rows[0]
    assert winning.decided == "better"
    assert winning.verdict.startswith("All variants beats holdout: +10.0 pp, always-valid 95% interval [")
    assert winning.incremental_revenue == Decimal("1000.00")
    assert winning.incremental_revenue_ci is not None
    assert rows[2].verdict == "Nothing to compare yet"
    names = [item["row"].name for item in by_name.context["rows"]]
    assert names == sorted(names, key=str.lower)
    incremental = [item["row"].campaign_id for item in by_incremental.context["rows"]]
    assert incremental == [winner, experiment.campaign.pk, idle.pk]  # no holdout sorts last either way
    html = by_exposures.content.decode()
    assert "All variants beats holdout: +10.0 pp" in html
    assert f'href="{reverse("admin-campaign-report", args=[winner])}"' in html
    assert f'href="{reverse("admin-reports-export", args=["xlsx"])}?"' in html


def test_it_filters_by_period_and_keeps_the_period_in_sorting_and_downloads(marketer_client):
    # given the winner, exposed half an hour ago
    _winner()

    # when the overview is asked for a day long past
    page = marketer_client.get(
        reverse("admin-campaigns-overview"), {"from": "2020-01-01", "to": "2020-01-01"}
    )

    # then the campaign is listed with nothing in the period, and every link keeps the period
    (item,) = page.context["rows"]
    assert item["row"].exposures == 0
    assert item["row"].verdict == "Nothing to compare yet"
    html = page.content.decode()
    assert "?from=2020-01-01&amp;to=2020-01-01&amp;o=name" in html
    assert f"{reverse('admin-reports-export', args=['csv'])}?from=2020-01-01&amp;to=2020-01-01" in html


def test_it_links_the_overview_from_the_admin_index(marketer_client):
    # when a marketer opens the back office
    html = marketer_client.get(reverse("admin:index")).content.decode()

    # then the results overview is one click away
    assert f'href="{reverse("admin-campaigns-overview")}"' in html
