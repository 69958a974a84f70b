"""The back office's campaign results page: funnel, variant table, SVG charts, downloads; marketers only."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests import fixtures as f
from tests.fixtures import build_experiment, expose

pytestmark = pytest.mark.django_db


def test_it_shows_a_marketer_the_results_with_svg_charts(marketer_client):
    # given the experiment
    experiment = build_experiment()

    # when a marketer opens the campaign, then its results page
    change = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[experiment.campaign.pk]))
    page = marketer_client.get(reverse("admin-campaign-report", args=[experiment.campaign.pk]))

    # then the campaign links to the results, which show the headline, both charts as inline SVG with
    # one error bar per group, and the variant table
    report_url = reverse("admin-campaign-report", args=[experiment.campaign.pk])
    assert report_url in change.content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert "earned <strong>200.00 EUR</strong> more than its holdout" in html
    assert html.count('<svg class="ie-chart"') == 2
    assert 'aria-label="Funnel from exposures to orders"' in html
    assert html.count('class="ie-chart__ci"') == 3 * 3  # a line and two caps for A, Control and Holdout
    assert "<script" not in html.split('id="ie-report"')[1]
    assert page.context["rows"][0]["rate"] == "40.00%"
    assert "Sample ratio mismatch" not in html
    assert "Download CSV" in html


def test_it_warns_of_a_sample_ratio_mismatch_on_the_page(marketer_client):
    # given a 50/50 campaign that received 300 and 200 shoppers
    campaign = f.campaign_live(channels=["email"], variants=("A", "B"))
    a, b = campaign.variants.order_by("pk")
    expose(campaign=campaign, variant=a, users=[f.unique("a") for _ in range(300)])
    expose(campaign=campaign, variant=b, users=[f.unique("b") for _ in range(200)])

    # when a marketer opens its results
    page = marketer_client.get(reverse("admin-campaign-report", args=[campaign.pk]))

    # then the mismatch is called out, and no holdout means no incremental headline
    html = page.content.decode()
    assert "Sample ratio mismatch" in html
    assert "incremental revenue cannot be measured" in html


def test_it_downloads_csv_from_the_admin_and_keeps_out_staff_without_campaign_access(client, marketer_client):
    # given the experiment and a staff user with no permissions
    experiment = build_experiment()
    outsider = User.objects.create_user("otto", "otto@example.com", "a-long-test-password", is_staff=True)

    # when the marketer downloads the CSV, and the outsider opens the page
    download = marketer_client.get(
        reverse("admin-reports-export", args=["csv"]), {"campaign": experiment.campaign.pk}
    )
    client.force_login(outsider)
    refused = client.get(reverse("admin-campaign-report", args=[experiment.campaign.pk]))

    # then the CSV holds the campaign's three rows, and the outsider is refused
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert [row["group"] for row in rows] == ["A", "Control", "Holdout"]
    assert refused.status_code == 403


def test_it_shows_a_bad_period_as_a_message_not_an_error_page(marketer_client):
    # given the experiment
    experiment = build_experiment()

    # when the period cannot be read
    page = marketer_client.get(
        reverse("admin-campaign-report", args=[experiment.campaign.pk]), {"from": "tomorrow-ish"}
    )

    # then the page explains it and shows all time
    assert page.status_code == 200
    assert "is not a date" in page.content.decode()


def test_it_renders_a_campaign_with_no_exposures_yet(marketer_client):
    # given a campaign nobody has seen
    campaign = f.campaign_live(channels=["email"], variants=("A", "B"))

    # when a marketer opens its results
    page = marketer_client.get(reverse("admin-campaign-report", args=[campaign.pk]))

    # then the page and both charts render, with nothing to compute
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg class="ie-chart"') == 2
    assert "no exposures" in html
    assert "Sample ratio mismatch" not in html
