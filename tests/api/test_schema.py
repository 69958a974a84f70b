from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client


def test_it_generates_a_valid_schema_without_warnings(tmp_path) -> None:
    # when the OpenAPI schema is generated with warnings as errors
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    # then it declares the Bearer scheme and documents Idempotency-Key on idempotent writes
    schema = yaml.safe_load(target.read_text())
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ie_<prefix>_<secret>",
    }
    put = schema["paths"]["/api/v1/users/{user_id}/preferences"]["put"]
    assert "Idempotency-Key" in [p["name"] for p in put["parameters"]]
    # and the error answers each operation can give, with the error shape
    assert {"400", "401", "403", "404", "409", "422", "429"} <= set(put["responses"])
    listing = schema["paths"]["/api/v1/interventions"]["get"]
    assert {"400", "401", "403", "429"} <= set(listing["responses"])  # bad filters are refused
    error = listing["responses"]["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    # and a campaign's local send time is a time of day without an offset, as the API gives it
    local_time = schema["components"]["schemas"]["Campaign"]["properties"]["send_local_time"]
    assert "format" not in str(local_time)
    assert re.search(local_time["pattern"], "19:44:17")


@pytest.mark.django_db
def test_it_serves_the_schema_and_swagger_ui_without_a_cdn() -> None:
    schema = Client().get("/api/schema/")
    docs = Client().get("/api/docs/")

    assert schema.status_code == 200
    assert docs.status_code == 200
    html = docs.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets
    assert all(url.startswith("/static/") for url in assets), assets
    assert all(Client().get(url).status_code == 200 for url in assets)
