"""Raw exports of interventions, deliveries, tracking events and conversions: API, admin and commands,
read back as files; a large export streams from a server-side cursor in bounded memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from django.core.management import call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from interventions.models import Intervention
from tests.fixtures import build_experiment, delivery_queued
from tracking.models import Conversion, TrackingEvent

pytestmark = pytest.mark.django_db


def _csv(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_it_exports_each_kind_of_raw_row_as_csv_through_the_api(api_client):
    # given the experiment (A, Control and holdout exposures, events, orders) and one queued delivery
    experiment = build_experiment()
    delivery = delivery_queued("email", campaign=experiment.campaign)
    client = api_client(scopes=["reports"])

    # when each kind is downloaded for the campaign
    got = {
        kind: client.get(f"/api/v1/reports/{kind}.csv", {"campaign": experiment.campaign.pk})
        for kind in ("interventions", "deliveries", "events", "conversions")
    }

    # then each is a streamed CSV attachment holding exactly that campaign's rows, oldest first
    for kind, response in got.items():
        assert response.status_code == 200, kind
        assert isinstance(response, StreamingHttpResponse)
        assert response["Content-Disposition"].startswith(f'attachment; filename="{kind}-')
    interventions = _csv(got["interventions"])
    assert len(interventions) == Intervention.objects.filter(campaign=experiment.campaign).count() == 27
    assert {row["campaign_id"] for row in interventions} == {str(experiment.campaign.pk)}
    assert [row["created_at"] for row in interventions] == sorted(row["created_at"] for row in interventions)
    assert sum(row["is_holdout"] == "true" for row in interventions) == 5
    (row,) = _csv(got["deliveries"])
    assert (row["id"], row["intervention_id"], row["campaign_id"], row["status"]) == (
        str(delivery.pk),
        str(delivery.intervention_id),
        str(experiment.campaign.pk),
        "queued",
    )
    events = _csv(got["events"])
    assert sorted(row["type"] for row in events) == sorted(
        ["displayed", "displayed", "clicked", "opened", "clicked", "clicked", "dismissed"]
    )
    conversions = _csv(got["conversions"])
    assert len(conversions) == Conversion.objects.filter(campaign=experiment.campaign).count() == 8
    assert sorted(row["revenue"] for row in conversions)[-1] == "50.00"
    assert {row["currency"] for row in conversions} == {"EUR", "USD"}


def test_it_exports_xlsx_and_filters_by_period(api_client):
    # given the experiment
    experiment = build_experiment()
    client = api_client(scopes=["reports"])
    today = timezone.now().date()

    # when the events are downloaded as XLSX for today, and as CSV for a day long past
    xlsx = client.get(
        "/api/v1/reports/events.xlsx", {"from": str(today - timedelta(days=1)), "to": str(today)}
    )
    past = client.get("/api/v1/reports/events.csv", {"from": "2020-01-01", "to": "2020-01-01"})
    refused = api_client(scopes=["events"]).get("/api/v1/reports/events.csv")

    # then the workbook holds every event with typed times in UTC, the past has none, and the
    # reports scope is needed
    workbook = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content)), read_only=True)
    values = list(workbook["events"].values)
    assert values[0][:3] == ("event_id", "occurred_at (UTC)", "received_at (UTC)")
    assert len(values) - 1 == TrackingEvent.objects.count() == 7
    assert values[1][1].date() in (today, today - timedelta(days=1))
    assert _csv(past) == []
    assert refused.status_code == 403
    assert experiment.campaign.pk


def test_it_downloads_raw_rows_from_the_admin_for_those_who_may_see_them(marketer_client):
    # given the experiment
    experiment = build_experiment()

    # when a marketer opens the campaign's results and follows its raw conversions link
    page = marketer_client.get(reverse("admin-campaign-report", args=[experiment.campaign.pk]))
    link = reverse("admin-raw-export", args=["conversions", "csv"]) + f"?campaign={experiment.campaign.pk}"
    download = marketer_client.get(link)

    # then the link is on the page and the download holds the campaign's orders
    assert link in page.content.decode()
    assert len(_csv(download)) == 8


def _many_events(count: int) -> None:
    """``count`` tracking events in one statement (no intervention: the export does not need one)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {TrackingEvent._meta.db_table}
                (event_id, type, source, user_id, channel, occurred_at, received_at, properties)
            SELECT 'bulk-' || n, 'clicked', 'api', 'shopper-' || (n %% 5000), 'email',
                   now() - make_interval(secs => n), now(), '{{}}'::jsonb
            FROM generate_series(1, %s) AS n
            """,  # noqa: S608  (the model's table name)
            [count],
        )


def test_it_streams_a_large_export_in_bounded_memory(api_client):
    # given 50,000 tracking events
    _many_events(50_000)

    # when the CSV is downloaded and read chunk by chunk, tracing Python allocations
    response = api_client(scopes=["reports"]).get("/api/v1/reports/events.csv")
    assert isinstance(response, StreamingHttpResponse)
    tracemalloc.start()
    chunks = lines = 0
    size = 0
    content = cast(Iterator[bytes], response.streaming_content)  # a WSGI view: a sync iterator
    for chunk in content:
        chunks += 1
        lines += chunk.count(b"\n")
        size += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # then every row arrived, in many chunks (the cursor's pages), and the peak of Python memory stayed
    # well under the size of the file written: a page of rows at a time (about 3 MB measured), where
    # holding every row as Python objects would take some 70 MB
    assert lines == 50_001
    assert chunks >= 25
    assert peak < size / 1.5, (peak, size)


def test_it_exports_with_the_commands_and_a_progress_bar(tmp_path: Path):
    # given the experiment
    build_experiment()
    csv_out, xlsx_out = tmp_path / "conversions.csv", tmp_path / "interventions.xlsx"
    err = io.StringIO()

    # when the commands write a CSV (with its progress bar) and an XLSX
    call_command(
        "export_conversions", "--format", "csv", "--out", str(csv_out), stderr=err, stdout=io.StringIO()
    )
    call_command(
        "export_interventions",
        "--format",
        "xlsx",
        "--out",
        str(xlsx_out),
        "--no-progress",
        stdout=io.StringIO(),
    )

    # then both files are whole, and nothing half-written is left beside them
    rows = list(csv.DictReader(csv_out.open()))
    assert len(rows) == Conversion.objects.count() == 8
    workbook = load_workbook(xlsx_out, read_only=True)
    assert len(list(workbook["interventions"].values)) - 1 == Intervention.objects.count()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conversions.csv", "interventions.xlsx"]
