"""What a send run leaves for the reports: the results page, the report API and the exports read a
scheduled campaign's run exactly as they read a triggered campaign's decisions — the run's holdout members
are exposures of the holdout — and a shopper who orders while the run is under way is not sent to."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from delivery import runs
from delivery.models import SendRunMember
from delivery.services import decisions_process_batch
from interventions.models import Intervention
from tests import fixtures as f
from tests.fixtures import run_started, run_walked, scheduled_campaign, shoppers
from tracking.attribution import conversions_record

pytestmark = pytest.mark.django_db


def _csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def _groups(report: dict) -> dict[str, tuple[int, int, str]]:
    """(exposures' shoppers, converters, revenue) per group of a report answered by the API."""
    groups = {v["name"]: v for v in report["variants"]}
    groups["Holdout"] = report["holdout"]
    return {name: (g["users"], g["converters"], g["revenue"]) for name, g in groups.items()}


def test_it_reports_a_runs_members_and_its_holdout_like_a_triggered_campaigns(api_client, marketer_client):
    # given a scheduled campaign with a 30 % holdout whose run reached 40 gold shoppers
    campaign = scheduled_campaign(holdout_percent=Decimal("30"))
    members = shoppers(40)
    run = run_walked(run_started(campaign))
    held = sorted(
        Intervention.objects.filter(campaign=campaign, is_holdout=True).values_list("user_id", flat=True)
    )
    sent = sorted(
        Intervention.objects.filter(campaign=campaign, is_holdout=False).values_list("user_id", flat=True)
    )
    assert run.state == "finished"
    assert run.suppressed == {"holdout": len(held)}
    assert 0 < len(held) < 40
    assert sorted(held + sent) == sorted(members)
    # and orders afterwards: two sent-to shoppers and one held-out shopper
    conversions_record(
        orders=[f.order(sent[0], "50.00"), f.order(sent[1], "30.00"), f.order(held[0], "20.00")]
    )

    # when the report API, the export and the results page are asked about the campaign
    client = api_client(scopes=["reports"])
    report = client.get(f"/api/v1/campaigns/{campaign.pk}/report")
    export = client.get("/api/v1/reports/campaigns.csv", {"campaign": campaign.pk})
    raw = client.get("/api/v1/reports/interventions.csv", {"campaign": campaign.pk})
    page = marketer_client.get(reverse("admin-campaign-report", args=[campaign.pk]))
    # and the same for a triggered campaign, as the reference for the shape of the answers
    triggered = f.build_experiment().campaign
    reference = client.get(f"/api/v1/campaigns/{triggered.pk}/report").json()

    # then the run's members are the variant's exposures, its holdout members the holdout's
    assert report.status_code == 200
    body = report.json()
    assert set(body) == set(reference)
    assert _groups(body) == {"A": (len(sent), 2, "80.00"), "Holdout": (len(held), 1, "20.00")}
    assert body["incremental"] is not None
    rows = {row["group"]: row for row in _csv(export)}
    assert set(rows) == {"A", "Holdout"}
    assert (rows["A"]["users"], rows["Holdout"]["users"]) == (str(len(sent)), str(len(held)))
    assert rows["Holdout"]["converters"] == "1"
    raw_rows = _csv(raw)
    assert len(raw_rows) == 40
    assert sum(row["is_holdout"] in ("True", "true", "1") for row in raw_rows) == len(held)
    assert page.status_code == 200
    shown = {row["group"].name: row["group"] for row in page.context["rows"]}
    assert (shown["A"].users, shown["Holdout"].users) == (len(sent), len(held))
    assert (shown["A"].converters, shown["Holdout"].converters) == (2, 1)


def test_it_skips_a_shopper_who_orders_between_two_batches_of_the_run():
    # given a run of 6 that exits on checkout, its first batch of 3 already sent
    campaign = scheduled_campaign(exit_events=["checkout_completed"])
    shoppers(6)
    run = run_started(campaign)
    runs.send_run_step(run_id=run.pk, batch_size=3, after_commit=False)
    first = set(Intervention.objects.filter(campaign=campaign).values_list("user_id", flat=True))
    later = list(
        SendRunMember.objects.filter(run=run, state="planned")
        .order_by("position")
        .values_list("user_id", flat=True)
    )
    assert (len(first), len(later)) == (3, 3)

    # when a shopper of the second batch checks out, and the run goes on
    decisions_process_batch(
        events=[f.cart_event(user_id=later[1], event_type="checkout_completed")],
        campaigns=f.active_set(),
        after_commit=False,
    )
    run = run_walked(run, batch_size=3)

    # then that shopper is skipped with the reason, everyone else was decided once
    decided = list(Intervention.objects.filter(campaign=campaign).values_list("user_id", flat=True))
    assert sorted(decided) == sorted(first | {later[0], later[2]})
    assert SendRunMember.objects.get(run=run, user_id=later[1]).reason == "exit:checkout_completed"
    assert (run.state, run.skipped) == ("finished", {"exit:checkout_completed": 1})
    assert runs.send_run_books(run=run).balanced
