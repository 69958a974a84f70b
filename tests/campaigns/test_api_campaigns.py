from __future__ import annotations

import pytest

from campaigns.models import AuditEntry, Campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(api_client):
    return api_client(name="campaigns-as-code")


@pytest.fixture
def templates(client) -> dict[str, int]:
    onsite = client.post(
        "/api/v1/templates",
        {
            "name": "Pop-up",
            "channel": "onsite",
            "onsite_kind": "modal",
            "localizations": [
                {"locale": "en", "subject": "Wait!", "body_text": "10% off", "cta_label": "Go"}
            ],
        },
        format="json",
    )
    email = client.post(
        "/api/v1/templates",
        {
            "name": "Mail",
            "channel": "email",
            "localizations": [{"locale": "en", "subject": "Your cart", "body_text": "Come back"}],
        },
        format="json",
    )
    assert onsite.status_code == email.status_code == 201, (onsite.json(), email.json())
    return {"onsite": onsite.json()["id"], "email": email.json()["id"]}


def campaign_body(templates: dict[str, int], **overrides) -> dict:
    return {
        "name": "Abandoned cart",
        "kind": "triggered",
        "trigger": "prediction.cart_abandonment",
        "conditions": "score >= 0.7",
        "channels": ["onsite", "email"],
        "holdout_percent": "10.00",
        "exit_events": ["checkout_completed"],
        "variants": [
            {"name": "control", "is_control": True, "weight": 1},
            {
                "name": "discount",
                "weight": 3,
                "onsite_template": templates["onsite"],
                "email_template": templates["email"],
            },
        ],
        **overrides,
    }


def test_it_round_trips_a_campaign_with_nested_variants(client, templates) -> None:
    # when a campaign with its variants is created in one request
    created = client.post("/api/v1/campaigns", campaign_body(templates), format="json")

    # then it is a draft holding both variants with their template ids, audited under the key
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "draft"
    assert body["holdout_percent"] == "10.00"
    variants = {v["name"]: v for v in body["variants"]}
    assert variants["discount"]["onsite_template"] == templates["onsite"]
    assert variants["discount"]["email_template"] == templates["email"]
    assert variants["control"]["is_control"] is True
    assert AuditEntry.objects.get(action="campaign.created").actor_label == "api:campaigns-as-code"

    # and a GET body sent back with PUT changes nothing
    fetched = client.get(f"/api/v1/campaigns/{body['id']}").json()
    replaced = client.put(f"/api/v1/campaigns/{body['id']}", fetched, format="json")
    assert replaced.status_code == 200, replaced.json()
    assert {k: v for k, v in replaced.json().items() if k != "updated_at"} == {
        k: v for k, v in fetched.items() if k != "updated_at"
    }


def test_it_replaces_variants_on_put_and_keeps_them_on_patch(client, templates) -> None:
    campaign_id = client.post("/api/v1/campaigns", campaign_body(templates), format="json").json()["id"]

    patched = client.patch(f"/api/v1/campaigns/{campaign_id}", {"priority": 5}, format="json")
    body = campaign_body(templates)
    body["variants"] = body["variants"][1:]
    put = client.put(f"/api/v1/campaigns/{campaign_id}", body, format="json")

    assert patched.json()["priority"] == 5
    assert len(patched.json()["variants"]) == 2
    assert [v["name"] for v in put.json()["variants"]] == ["discount"]


def test_it_refuses_a_template_of_another_channel(client, templates) -> None:
    body = campaign_body(templates)
    body["variants"][1]["email_template"] = templates["onsite"]

    response = client.post("/api/v1/campaigns", body, format="json")

    # a well-formed body naming an existing template of the wrong kind: refused for what it says
    assert response.status_code == 422
    assert "email_template" in response.json()["error"]["details"]
    assert not Campaign.objects.exists()


def test_it_refuses_invalid_conditions_with_their_position(client, templates) -> None:
    response = client.post(
        "/api/v1/campaigns", campaign_body(templates, conditions="score >="), format="json"
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_rule"


def test_it_moves_a_campaign_through_allowed_transitions_and_refuses_others(client, templates) -> None:
    campaign_id = client.post("/api/v1/campaigns", campaign_body(templates), format="json").json()["id"]
    url = f"/api/v1/campaigns/{campaign_id}"

    # allowed: draft → active → paused → active → completed → archived
    for action, status in [
        ("activate", "active"),
        ("pause", "paused"),
        ("activate", "active"),
        ("complete", "completed"),
        ("archive", "archived"),
    ]:
        response = client.post(f"{url}/{action}")
        assert response.status_code == 200, (action, response.json())
        assert response.json()["status"] == status

    # refused: archived is final, and read-only
    refused = client.post(f"{url}/activate")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invalid_transition"
    assert client.patch(url, {"priority": 1}, format="json").status_code == 409
    assert AuditEntry.objects.filter(action="campaign.archived", actor_label="api:campaigns-as-code").exists()


def test_it_refuses_to_activate_a_campaign_that_cannot_run(client, templates) -> None:
    body = campaign_body(templates)
    body["variants"] = [{"name": "only", "onsite_template": templates["onsite"]}]
    campaign_id = client.post("/api/v1/campaigns", body, format="json").json()["id"]

    response = client.post(f"/api/v1/campaigns/{campaign_id}/activate")

    assert response.status_code == 409
    assert any("email" in problem for problem in response.json()["error"]["details"]["problems"])
    assert Campaign.objects.get(pk=campaign_id).status == "draft"


def test_it_duplicates_a_campaign_as_a_draft(client, templates) -> None:
    campaign_id = client.post(
        "/api/v1/campaigns", campaign_body(templates, status="active"), format="json"
    ).json()["id"]

    response = client.post(f"/api/v1/campaigns/{campaign_id}/duplicate")

    assert response.status_code == 201
    copy = response.json()
    assert (copy["name"], copy["status"]) == ("Abandoned cart (copy)", "draft")
    assert len(copy["variants"]) == 2


def test_it_replays_a_create_sent_twice_with_one_idempotency_key(client, templates) -> None:
    first = client.post(
        "/api/v1/campaigns", campaign_body(templates), format="json", HTTP_IDEMPOTENCY_KEY="deploy-42"
    )
    again = client.post(
        "/api/v1/campaigns", campaign_body(templates), format="json", HTTP_IDEMPOTENCY_KEY="deploy-42"
    )
    other = client.post(
        "/api/v1/campaigns",
        campaign_body(templates, name="Other"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="deploy-42",
    )

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 422
    assert Campaign.objects.count() == 1


def test_it_answers_404_for_an_unknown_or_malformed_id(client) -> None:
    assert client.get("/api/v1/campaigns/999999").status_code == 404
    assert client.get("/api/v1/campaigns/abc").json()["error"]["code"] == "not_found"
    assert client.post("/api/v1/campaigns/99999999999999999999999/activate").status_code == 404


def test_it_paginates_campaign_lists(client, templates) -> None:
    for index in range(3):
        client.post("/api/v1/campaigns", campaign_body(templates, name=f"C{index}"), format="json")

    page = client.get("/api/v1/campaigns?limit=2").json()
    rest = client.get("/api/v1/campaigns?limit=2&offset=2").json()

    assert page["count"] == 3
    assert len(page["results"]) == 2
    assert page["next"] is not None
    assert len(rest["results"]) == 1
    assert {c["name"] for c in page["results"] + rest["results"]} == {"C0", "C1", "C2"}


def test_it_finds_a_campaign_by_name_and_status(client, templates) -> None:
    client.post("/api/v1/campaigns", campaign_body(templates, name="Kept as code"), format="json")
    client.post("/api/v1/campaigns", campaign_body(templates, name="Other", status="active"), format="json")

    by_name = client.get("/api/v1/campaigns", {"name": "Kept as code"}).json()
    active = client.get("/api/v1/campaigns", {"status": "active"}).json()

    assert [c["name"] for c in by_name["results"]] == ["Kept as code"]
    assert [c["name"] for c in active["results"]] == ["Other"]
