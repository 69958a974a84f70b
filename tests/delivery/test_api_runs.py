"""The send-run endpoints: list and detail with counts, pause/resume/cancel, errors in the API's shape."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.utils import timezone

from delivery.models import SendRun
from tests.fixtures import run_started, run_walked, scheduled_campaign, shoppers

pytestmark = pytest.mark.django_db


def test_it_lists_a_campaigns_runs_and_shows_one_with_its_counts(api_client):
    # given a finished run of 3 shoppers
    campaign = scheduled_campaign()
    shoppers(3)
    run = run_walked(run_started(campaign))
    client = api_client(scopes=["campaigns"])

    # when its campaign's runs and the run are read
    listed = client.get(f"/api/v1/campaigns/{campaign.pk}/runs")
    detail = client.get(f"/api/v1/runs/{run.pk}")

    # then both show the run's books
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["results"]] == [run.pk]
    body = detail.json()
    assert (body["state"], body["audience_size"], body["decided"], body["queued"]) == ("finished", 3, 3, 3)
    assert body["progress"] == 1.0


def test_it_pauses_resumes_and_cancels_a_run(api_client):
    # given a running run
    campaign = scheduled_campaign()
    shoppers(2)
    run = run_started(campaign)
    client = api_client(scopes=["campaigns"])

    # when it is paused, resumed, cancelled
    states = [
        client.post(f"/api/v1/runs/{run.pk}/{move}").json()["state"] for move in ("pause", "resume", "cancel")
    ]

    # then each move answered with the new state
    assert states == ["paused", "running", "cancelled"]
    assert SendRun.objects.get(pk=run.pk).state == "cancelled"


def test_it_refuses_a_move_the_state_does_not_allow_and_an_unknown_run(api_client):
    # given a cancelled run
    campaign = scheduled_campaign()
    shoppers(1)
    run = run_started(campaign)
    client = api_client(scopes=["campaigns"])
    client.post(f"/api/v1/runs/{run.pk}/cancel")

    # when it is paused, and an unknown run is read
    refused = client.post(f"/api/v1/runs/{run.pk}/pause")
    unknown = client.get("/api/v1/runs/999999999")

    # then 409 and 404, in the error shape
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invalid_run_state"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def test_it_needs_the_campaigns_scope(api_client):
    response = api_client(scopes=["interventions"]).get("/api/v1/runs/1")
    assert response.status_code == 403


def test_it_shows_a_campaigns_runs_from_the_command_line():
    # given a finished run of 2 shoppers
    from io import StringIO

    from django.core.management import call_command

    campaign = scheduled_campaign()
    shoppers(2)
    run = run_walked(run_started(campaign))

    # when campaign_status is run for the campaign
    out = StringIO()
    call_command("campaign_status", str(campaign.pk), "--once", stdout=out)

    # then it prints the run's books
    assert f"run {run.pk}" in out.getvalue()
    assert "finished: 2/2 decided 2 queued 2" in out.getvalue()


def test_it_lets_a_marketer_pause_a_run_from_the_admin(marketer_client):
    # given a running run
    campaign = scheduled_campaign()
    shoppers(1)
    run = run_started(campaign)

    # when the marketer pauses it with the admin action
    response = marketer_client.post(
        "/admin/delivery/sendrun/", {"action": "pause_selected", "_selected_action": [run.pk]}
    )

    # then it is paused, and the run's page shows its progress
    assert response.status_code == 302
    assert SendRun.objects.get(pk=run.pk).state == "paused"
    page = marketer_client.get(f"/admin/delivery/sendrun/{run.pk}/change/")
    assert page.status_code == 200
    assert b"<progress" in page.content


def test_it_shows_the_latest_runs_progress_and_next_run_times_on_the_campaign_page(marketer_client):
    # given a daily 10:00 Paris campaign (sent at 10:00 on each shopper's clock) with a finished run of 3
    # shoppers, one of whom lives in New York
    campaign = scheduled_campaign(
        send_at=None, cron="0 10 * * *", schedule_timezone="Europe/Paris", send_local_time=time(10, 0)
    )
    shoppers(2)
    shoppers(1, zone="America/New_York")
    run = run_walked(run_started(campaign), now=timezone.now() + timedelta(days=2))

    # when the marketer opens the campaign's page
    page = marketer_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")

    # then it shows the run with its progress and a link to control it
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-run="{run.pk}"' in html
    assert "<progress" in html
    assert "3 / 3" in html
    assert f"?campaign__id__exact={campaign.pk}" in html
    assert (
        marketer_client.get(f"/admin/delivery/sendrun/?campaign__id__exact={campaign.pk}").status_code == 200
    )
    # and the next five runs at 10:00 Paris time, each reaching New York at 10:00 New York time
    schedule = page.context["schedule"]
    assert (schedule.zone, schedule.shopper_zones) == ("Europe/Paris", ["America/New_York"])
    assert len(schedule.runs) == 5
    for start, (in_new_york,) in schedule.runs:
        assert (start.hour, start.minute, start.tzinfo.key) == (10, 0, "Europe/Paris")
        assert (in_new_york.hour, in_new_york.tzinfo.key) == (10, "America/New_York")
        assert in_new_york > start
    assert "Reaches a shopper in America/New_York" in html
