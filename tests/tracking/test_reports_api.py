"""``GET /api/v1/campaigns/{id}/report``: the report as JSON, scope ``reports``, errors in the API shape."""

from __future__ import annotations

import pytest

from tests.fixtures import build_experiment

pytestmark = pytest.mark.django_db


def test_it_answers_the_report_as_json(api_client):
    # given the experiment and a key with the reports scope
    experiment = build_experiment()
    client = api_client(scopes=["reports"])

    # when the report is asked for
    response = client.get(f"/api/v1/campaigns/{experiment.campaign.pk}/report")

    # then it has the campaign, period, currency, funnel, variants, holdout and SRM, money as strings
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {
        "campaign",
        "period",
        "currency",
        "funnel",
        "variants",
        "holdout",
        "srm",
        "generated_at",
    }
    assert body["campaign"]["id"] == experiment.campaign.pk
    assert body["currency"] == "EUR"
    assert body["period"] == {"from": None, "to": None}
    a, control = body["variants"]
    assert (a["name"], a["users"], a["converters"], a["revenue"]) == ("A", 10, 4, "200.00")
    assert a["revenue_other_currencies"] == {"USD": "12.50"}
    assert a["conversion_rate_ci"]["low"] < 0.4 < a["conversion_rate_ci"]["high"]
    assert a["vs_control"]["relative_lift"] == pytest.approx(1.0)
    assert a["vs_holdout"]["incremental_revenue"] == "160.00"
    assert control["role"] == "control"
    assert body["holdout"]["users"] == 5
    assert body["incremental"]["incremental_revenue"] == "200.00"
    assert body["srm"]["mismatch"] is False


def test_it_filters_by_dates_and_echoes_the_period(api_client):
    # given the experiment (exposed today)
    experiment = build_experiment()

    # when the period is a day long ago
    response = api_client(scopes=["reports"]).get(
        f"/api/v1/campaigns/{experiment.campaign.pk}/report", {"from": "2020-01-01", "to": "2020-01-01"}
    )

    # then nobody is in it, and the period is the whole day
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {"from": "2020-01-01T00:00:00+00:00", "to": "2020-01-02T00:00:00+00:00"}
    assert body["funnel"]["users"] == 0
    assert body["variants"][0]["conversion_rate"] is None


@pytest.mark.parametrize(
    ("query", "code"),
    [({"from": "last week"}, "invalid_date"), ({"from": "2026-11-02", "to": "2026-11-01"}, "invalid_period")],
)
def test_it_refuses_bad_dates_with_a_400(api_client, query, code):
    # given a campaign
    experiment = build_experiment()

    # when the period cannot be read
    response = api_client(scopes=["reports"]).get(f"/api/v1/campaigns/{experiment.campaign.pk}/report", query)

    # then it is a 400 in the API's error shape
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_it_needs_the_reports_scope_and_a_known_campaign(api_client):
    # given a key without the reports scope
    experiment = build_experiment()

    # when it asks for a report, and a full key asks for an unknown campaign
    forbidden = api_client(scopes=["campaigns"]).get(f"/api/v1/campaigns/{experiment.campaign.pk}/report")
    missing = api_client(scopes=["reports"]).get("/api/v1/campaigns/987654321/report")

    # then 403 insufficient_scope and 404 not_found
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "insufficient_scope"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
