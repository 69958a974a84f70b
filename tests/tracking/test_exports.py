"""CSV and XLSX exports: through the API and the ``export_report`` command, read back as files."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from campaigns.models import Campaign
from tests.fixtures import build_experiment

pytestmark = pytest.mark.django_db


def rows_for(rows: list[dict[str, str]], campaign_id: int) -> dict[str, dict[str, str]]:
    return {row["group"]: row for row in rows if row["campaign_id"] == str(campaign_id)}


def test_it_exports_csv_as_an_attachment_with_one_row_per_group(api_client):
    # given the experiment
    experiment = build_experiment()

    # when the CSV export is downloaded for that campaign
    response = api_client(scopes=["reports"]).get(
        "/api/v1/reports/campaigns.csv", {"campaign": experiment.campaign.pk}
    )

    # then it is an attachment that parses back into A, Control and Holdout rows
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    text = b"".join(response.streaming_content).decode()
    rows = rows_for(list(csv.DictReader(io.StringIO(text))), experiment.campaign.pk)
    assert set(rows) == {"A", "Control", "Holdout"}
    assert (rows["A"]["users"], rows["A"]["converters"], rows["A"]["revenue"]) == ("10", "4", "200.00")
    assert rows["A"]["revenue_other_currencies"] == "12.50 USD"
    assert rows["A"]["incremental_revenue"] == "160.00"
    assert rows["Holdout"]["role"] == "holdout"
    assert rows["Control"]["lift_vs_control"] == ""


def test_it_exports_xlsx_that_opens_in_a_spreadsheet(api_client):
    # given the experiment
    experiment = build_experiment()

    # when the XLSX export is downloaded for everything
    response = api_client(scopes=["reports"]).get("/api/v1/reports/campaigns.xlsx")

    # then openpyxl opens it and finds the same numbers
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=")
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    values = list(workbook["Report"].values)
    header = [str(cell) for cell in values[0]]
    rows = [dict(zip(header, row, strict=True)) for row in values[1:]]
    mine = {row["group"]: row for row in rows if row["campaign_id"] == experiment.campaign.pk}
    assert mine["A"]["users"] == 10
    assert Decimal(str(mine["A"]["revenue"])) == Decimal("200.00")
    assert mine["Holdout"]["converters"] == 1


def test_it_exports_names_that_look_like_formulas_or_hold_control_characters_as_text(api_client):
    # given a campaign whose name a spreadsheet would run as a formula and which holds a control
    # character XML cannot carry (names are marketers' and API clients' input)
    experiment = build_experiment()
    name = '=HYPERLINK("https://evil.example.com","open")\x13'
    Campaign.objects.filter(pk=experiment.campaign.pk).update(name=name)
    client = api_client(scopes=["reports"])

    # when both exports are downloaded
    csv_response = client.get("/api/v1/reports/campaigns.csv", {"campaign": experiment.campaign.pk})
    xlsx_response = client.get("/api/v1/reports/campaigns.xlsx", {"campaign": experiment.campaign.pk})

    # then the CSV cell starts with the quote that keeps it text
    assert csv_response.status_code == 200
    text = b"".join(csv_response.streaming_content).decode()
    rows = rows_for(list(csv.DictReader(io.StringIO(text))), experiment.campaign.pk)
    assert rows["A"]["campaign"] == "'" + name
    # and the XLSX opens, with the name as a text cell, the control character replaced, no formula
    assert xlsx_response.status_code == 200
    workbook = load_workbook(io.BytesIO(b"".join(xlsx_response.streaming_content)))
    sheet = workbook["Report"]
    header = [cell.value for cell in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("campaign") + 1)
    assert cell.data_type == "s"
    assert cell.value == name.replace("\x13", "\ufffd")


def test_it_refuses_bad_export_parameters_and_keys_without_the_scope(api_client):
    # given keys with and without the reports scope
    reports, campaigns = api_client(scopes=["reports"]), api_client(scopes=["campaigns"])

    # when parameters are wrong, or the scope is missing
    bad_date = reports.get("/api/v1/reports/campaigns.csv", {"to": "31/12/2026"})
    bad_campaign = reports.get("/api/v1/reports/campaigns.csv", {"campaign": "abc"})
    bad_format = reports.get("/api/v1/reports/campaigns.pdf")
    forbidden = campaigns.get("/api/v1/reports/campaigns.xlsx")

    # then 400s and a 404 in the API's error shape, and a 403
    assert (bad_date.status_code, bad_date.json()["error"]["code"]) == (400, "invalid_date")
    assert (bad_campaign.status_code, bad_campaign.json()["error"]["code"]) == (400, "invalid_campaign")
    assert bad_format.status_code == 404
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "insufficient_scope")


def test_it_writes_csv_and_xlsx_files_from_the_command(tmp_path):
    # given the experiment
    experiment = build_experiment()
    csv_path, xlsx_path = tmp_path / "report.csv", tmp_path / "report.xlsx"

    # when the command exports it in both formats
    call_command(
        "export_report", "--format", "csv", "--out", str(csv_path), "--campaign", str(experiment.campaign.pk)
    )
    call_command("export_report", "--format", "xlsx", "--out", str(xlsx_path), "--from", "2020-01-01")

    # then both files hold the campaign's rows
    with csv_path.open(newline="") as handle:
        rows = rows_for(list(csv.DictReader(handle)), experiment.campaign.pk)
    assert rows["A"]["converters"] == "4"
    values = list(load_workbook(xlsx_path, read_only=True)["Report"].values)
    assert any(row[0] == experiment.campaign.pk and row[5] == "Holdout" for row in values[1:])


def test_it_refuses_a_bad_date_in_the_command(tmp_path):
    from django.core.management.base import CommandError

    # when the command is given a date it cannot read
    with pytest.raises(CommandError, match="from"):
        call_command("export_report", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--from", "soon")

    # then no file was written
    assert not (tmp_path / "x.csv").exists()
