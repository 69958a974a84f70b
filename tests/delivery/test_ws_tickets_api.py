"""POST /api/v1/ws-tickets, GET /ws/stats and the demo endpoints, over HTTP."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from gateway import stats
from gateway.tickets import TicketRefused, ws_ticket_redeem

pytestmark = pytest.mark.django_db


def test_it_issues_a_ticket_bound_to_user_and_session(api_client) -> None:
    # when a service asks for a ticket
    response = api_client(scopes=["ws_tickets"]).post(
        "/api/v1/ws-tickets", {"user_id": "u-42", "session_id": "s-9"}, format="json"
    )

    # then it gets one that redeems once, for that user and session
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"ticket", "expires_at"}
    assert response["Cache-Control"] == "no-store"
    claims = ws_ticket_redeem(ticket=body["ticket"])
    assert (claims.user_id, claims.session_id) == ("u-42", "s-9")
    with pytest.raises(TicketRefused) as refused:
        ws_ticket_redeem(ticket=body["ticket"])
    assert refused.value.code == "ticket_reused"


def test_it_names_the_rooms_a_ticket_may_join(api_client) -> None:
    # when a service asks for a ticket for two rooms
    response = api_client(scopes=["ws_tickets"]).post(
        "/api/v1/ws-tickets", {"user_id": "u-42", "rooms": ["campaign.7", "broadcast"]}, format="json"
    )

    # then the ticket carries them
    assert response.status_code == 201, response.content
    assert ws_ticket_redeem(ticket=response.json()["ticket"]).rooms == {"campaign.7", "broadcast"}


@pytest.mark.parametrize(
    ("rooms", "code"),
    [(["user.u-1"], "room_forbidden"), (["Campaign.1"], "invalid"), (["other"], "room_forbidden")],
)
def test_it_refuses_a_ticket_for_rooms_outside_the_rule(api_client, rooms, code) -> None:
    response = api_client(scopes=["ws_tickets"]).post(
        "/api/v1/ws-tickets", {"user_id": "u-42", "rooms": rooms}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_it_refuses_a_ticket_without_the_scope_or_a_key(api_client) -> None:
    without_scope = api_client(scopes=["events"]).post("/api/v1/ws-tickets", {"user_id": "u"}, format="json")
    anonymous = Client().post("/api/v1/ws-tickets", {"user_id": "u"}, content_type="application/json")

    assert without_scope.status_code == 403
    assert anonymous.status_code == 401


def test_it_validates_the_ticket_request(api_client) -> None:
    response = api_client().post("/api/v1/ws-tickets", {"user_id": "u" * 200}, format="json")

    assert response.status_code == 400
    assert "error" in response.json()


def test_it_reports_ws_stats_per_process_and_in_total(api_client) -> None:
    # given this process has counted some traffic
    stats.STATS.messages_in += 3
    async_to_sync(stats.apublish)()

    body = api_client(scopes=["metrics"]).get("/ws/stats").json()

    assert set(body["total"]) == {
        "processes",
        "connections",
        "users_online",
        "rooms",
        "messages_in",
        "messages_out",
    }
    mine = [p for p in body["processes"] if p["process"] == stats.process_id()]
    assert len(mine) == 1
    assert mine[0]["messages_in"] >= 3
    assert body["total"]["messages_in"] >= mine[0]["messages_in"]


def test_it_serves_the_demo_shop_and_a_ticket_without_an_api_key(settings) -> None:
    settings.DEMO_ENABLED = True
    client = Client(enforce_csrf_checks=True)

    page = client.get("/demo/")
    token = client.cookies["csrftoken"].value
    ticket = client.post("/demo/ticket", HTTP_X_CSRFTOKEN=token)

    assert page.status_code == 200
    assert b"intervention-engine.js" in page.content
    claims = ws_ticket_redeem(ticket=ticket.json()["ticket"])
    assert claims.user_id == page.context["user_id"]
    assert client.post("/demo/ticket").status_code == 403  # CSRF: no token, no ticket


def test_it_hides_the_demo_when_disabled(settings) -> None:
    settings.DEMO_ENABLED = False

    assert Client().get("/demo/").status_code == 404
    assert Client().post("/demo/ticket").status_code in (403, 404)
