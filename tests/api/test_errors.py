from __future__ import annotations

import pytest
from django.test import AsyncClient, Client

pytestmark = pytest.mark.django_db


def test_it_answers_bad_json_with_malformed_json(api_client) -> None:
    response = api_client().put(
        "/api/v1/users/u-1/preferences", data=b'{"locale": "fr', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_it_answers_json_nested_too_deeply_with_malformed_json(api_client) -> None:
    response = api_client().put(
        "/api/v1/users/u-1/preferences", data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_it_refuses_unknown_fields_and_lists_them(api_client) -> None:
    response = api_client().put(
        "/api/v1/users/u-1/preferences",
        {"locale": "fr-FR", "colour": "blue", "consent": {"email": True, "fax": True}},
        format="json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_field"
    assert sorted(error["details"]["unknown_fields"]) == ["colour", "consent.fax"]


def test_it_answers_a_validation_error_with_the_field_and_its_messages(api_client) -> None:
    response = api_client().put(
        "/api/v1/users/u-1/preferences", {"consent": {"email": "maybe"}}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "email" in error["details"]["consent"]


def test_it_answers_an_unsupported_media_type_with_415(api_client) -> None:
    response = api_client().put("/api/v1/users/u-1/preferences", "locale=fr", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_it_answers_a_wrong_method_with_405(api_client) -> None:
    response = api_client().post("/api/v1/users/u-1/preferences", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_it_answers_an_unknown_api_path_with_json_404() -> None:
    response = Client().get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_it_answers_an_unknown_shopper_with_json_404(api_client) -> None:
    response = api_client().get("/api/v1/users/nobody/preferences")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_throttles_per_key_with_retry_after(api_client, settings) -> None:
    # given a rate of two requests a minute
    settings.API_THROTTLE_RATE = "2/min"
    client, other = api_client(), api_client()

    # when one key sends three
    statuses = [client.get("/api/v1/users/nobody/preferences").status_code for _ in range(3)]

    # then the third is throttled, with a Retry-After, and another key is not
    assert statuses == [404, 404, 429]
    response = client.get("/api/v1/users/nobody/preferences")
    assert response.json()["error"]["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 61
    assert other.get("/api/v1/users/nobody/preferences").status_code == 404


def test_it_answers_an_oversized_idempotent_write_with_json_413(api_client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = api_client().put(
        "/api/v1/users/u-1/preferences", {"locale": "x" * 2000}, format="json", HTTP_IDEMPOTENCY_KEY="big"
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_it_answers_json_under_api_even_with_debug_pages_on(settings) -> None:
    # given development settings, where Django would render its HTML debug pages
    settings.DEBUG = True

    # when an unknown API path is requested, and a request with a bad Host header
    missing = Client().get("/api/v1/no-such-thing")
    bad_host = Client(HTTP_HOST="evil.example").get("/api/v1/campaigns")

    # then both answer the JSON error shape, while a non-API page keeps Django's own
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert bad_host.status_code == 400
    assert bad_host.json()["error"]["code"] == "bad_request"
    assert Client().get("/no-such-page")["Content-Type"].startswith("text/html")


async def test_it_answers_json_under_api_when_served_asynchronously(settings) -> None:
    settings.DEBUG = True

    response = await AsyncClient().get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
