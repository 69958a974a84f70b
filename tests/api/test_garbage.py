"""Every write endpoint under /api/v1/ answers garbage with a 4xx JSON error, never a 500.

Endpoints are read from the OpenAPI schema, so a new write endpoint is covered as soon as it is routed.
"""

from __future__ import annotations

import json
import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from campaigns.models import Campaign, Template
from personalization.models import Profile, Segment

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch", "delete")


def write_endpoints() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    return sorted(
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if method in WRITE_METHODS
    )


DEEP = b"[" * 50_000 + b"]" * 50_000
JSON_BODIES: list[object] = [
    None,
    [],
    {},
    "a string",
    12,
    True,
    [{"name": "x"}],
    {"name": None, "rules": None, "channel": None, "localizations": None, "variants": None},
    {"name": ["a"], "rules": {"a": 1}, "channel": 7, "localizations": "x", "variants": "x"},
    {"name": "x" * 100_000, "rules": "x" * 100_000, "subject": "y" * 100_000},
    {"name": "nul\u0000byte", "rules": "cart.total >= 1\u0000", "timezone": "Europe/\u0000Paris"},
    {"name": "n", "rules": "", "channel": "email", "localizations": [{"locale": None}, 3, []]},
    {"name": "n", "localizations": [{"locale": "en", "subject": "{{" * 5000}]},
    {"name": "n", "variants": [1, None, {"name": {"x": 1}}, {"name": "v", "weight": -1}]},
    {"name": "n", "variants": [{"name": "v", "onsite_template": 99999999999999999999999}]},
    {"name": "n", "segment": 2**80, "priority": 10**30, "delay_seconds": -5, "holdout_percent": "NaN"},
    {"name": "n", "holdout_percent": 1e308, "send_at": "2026-13-45T99:00", "send_local_time": "25:61"},
    {"name": "n", "channels": [None, "fax", ["onsite"]], "exit_events": [{}], "status": "exploded"},
    {"name": "n", "conditions": "(" * 500 + ")" * 500, "trigger": "x" * 300},
    {"consent": {"email": None, "fax": True}, "quiet_hours": [], "timezone": 5, "locale": {"a": 1}},
    {"quiet_hours": {"start": "22:00", "end": None}, "timezone": "../../../../etc/passwd"},
    {"events": [{}] * 3, "user_id": None, "campaign": "x", "context": "y", "session_id": ["s"]},
]
RAW_BODIES: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"{", "application/json"),
    (b'{"name": NaN}', "application/json"),
    (b'{"name": Infinity}', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'{"a":' * 2000, "application/json"),
    (DEEP, "application/json"),
    (b"name=x&rules=y", "application/x-www-form-urlencoded"),
    (b"<xml/>", "application/xml"),
    (b"{}", "text/plain"),
]


@pytest.fixture
def path_values(db) -> dict[str, str]:
    """Path parameters pointing at real objects, so detail endpoints get past their 404."""
    template = Template.objects.create(name="t", channel="sms")
    segment = Segment.objects.create(name="s", rules="orders_count == 0")
    campaign = Campaign.objects.create(name="c", trigger="page_viewed")
    Profile.objects.create(user_id="u-1")
    return {"/templates/": str(template.pk), "/segments/": str(segment.pk), "/campaigns/": str(campaign.pk)}


def concrete(path: str, values: dict[str, str]) -> str:
    if "{user_id}" in path:
        path = path.replace("{user_id}", "u-1")
    resource = next((value for prefix, value in values.items() if prefix in path), "1")
    return re.sub(r"\{[^}]+\}", resource, path)


def assert_clean_error(response, label: str) -> None:
    assert response.status_code < 500, (label, response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), label
        error = response.json()["error"]
        assert isinstance(error["code"], str), label
        assert isinstance(error["message"], str), label
        assert isinstance(error["details"], dict), label


@pytest.mark.parametrize(("method", "path"), write_endpoints())
def test_it_never_answers_garbage_with_a_500(api_client, path_values, method, path) -> None:
    client = api_client()
    url = concrete(path, path_values)
    send = getattr(client, method.lower())
    for body in JSON_BODIES:
        response = send(url, data=json.dumps(body), content_type="application/json")
        assert_clean_error(response, f"{method} {url} {str(body)[:80]}")
    for raw, content_type in RAW_BODIES:
        response = send(url, data=raw, content_type=content_type)
        assert_clean_error(response, f"{method} {url} {raw[:40]!r} as {content_type}")


def test_the_corpus_reaches_the_campaign_endpoints() -> None:
    endpoints = write_endpoints()
    assert ("POST", "/api/v1/campaigns") in endpoints
    assert ("PUT", "/api/v1/users/{user_id}/preferences") in endpoints
