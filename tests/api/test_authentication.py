from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from api.models import ApiKey, Scope
from api.services import api_key_create, api_key_hash, api_key_revoke
from core.errors import ApplicationError
from personalization.models import Profile

pytestmark = pytest.mark.django_db

URL = "/api/v1/users/u-1/preferences"


@pytest.fixture(autouse=True)
def shopper() -> Profile:
    return Profile.objects.create(user_id="u-1", timezone="Europe/Paris")


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_it_refuses_a_request_without_a_key() -> None:
    response = client_with(None).get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer nope", "Bearer ie_deadbeef_wrongsecret", "Token ie_a_b", "Bearer ", "Basic dXNlcjpwYXNz"],
)
def test_it_refuses_an_invalid_key(header: str) -> None:
    api_key_create(name="real", scopes=Scope.values)

    response = client_with(header).get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_it_refuses_a_key_whose_secret_is_wrong_even_with_a_real_prefix() -> None:
    # given a real key
    _, raw_key = api_key_create(name="real", scopes=Scope.values)
    forged = raw_key[:-4] + ("AAAA" if not raw_key.endswith("AAAA") else "BBBB")

    # when its prefix is sent with another secret
    response = client_with(f"Bearer {forged}").get(URL)

    # then it is refused
    assert response.status_code == 401


def test_it_accepts_a_valid_key_and_records_its_use() -> None:
    api_key, raw_key = api_key_create(name="svc", scopes=Scope.values)

    response = client_with(f"Bearer {raw_key}").get(URL)

    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_it_refuses_a_revoked_key() -> None:
    # given a key that worked
    api_key, raw_key = api_key_create(name="svc", scopes=Scope.values)
    assert client_with(f"Bearer {raw_key}").get(URL).status_code == 200

    # when it is revoked
    api_key_revoke(api_key=api_key)
    response = client_with(f"Bearer {raw_key}").get(URL)

    # then it is refused
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "invalid_api_key",
        "message": "This API key has been revoked.",
        "details": {},
    }


def test_it_refuses_a_key_without_the_scope_and_names_the_scope() -> None:
    _, raw_key = api_key_create(name="events-only", scopes=[Scope.EVENTS])

    response = client_with(f"Bearer {raw_key}").get(URL)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert error["details"] == {"missing_scopes": ["users"]}
    assert "users" in error["message"]


def test_create_api_key_prints_the_key_once_and_stores_only_its_hash() -> None:
    # when the command creates a key with every scope, asked for by name
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "checkout-service", "--all-scopes", stdout=out, stderr=err)

    # then stdout is exactly the key, which works, and only its hash is stored
    raw_key = out.getvalue().strip()
    api_key = ApiKey.objects.get(name="checkout-service")
    assert raw_key.startswith(f"ie_{api_key.prefix}_")
    assert api_key.hashed_key == api_key_hash(raw_key)
    assert raw_key not in str(ApiKey.objects.filter(pk=api_key.pk).values().get())
    assert raw_key not in err.getvalue()
    assert sorted(api_key.scopes) == sorted(Scope.values)
    assert client_with(f"Bearer {raw_key}").get(URL).status_code == 200


def test_create_api_key_grants_only_the_scopes_asked_for() -> None:
    out = io.StringIO()
    call_command(
        "create_api_key",
        "tracker",
        "--scope",
        "events",
        "--scope",
        "ws_tickets",
        stdout=out,
        stderr=io.StringIO(),
    )

    assert ApiKey.objects.get(name="tracker").scopes == ["events", "ws_tickets"]
    assert client_with(f"Bearer {out.getvalue().strip()}").get(URL).status_code == 403


def test_create_api_key_grants_no_scope_by_default() -> None:
    # when the command is asked for a key without naming its scopes
    with pytest.raises(CommandError) as refused:
        call_command("create_api_key", "lazy", stdout=io.StringIO(), stderr=io.StringIO())

    # then it explains what to ask for, and creates nothing
    assert "--scope" in str(refused.value)
    assert "--all-scopes" in str(refused.value)
    assert not ApiKey.objects.filter(name="lazy").exists()


def test_it_refuses_a_key_without_scopes() -> None:
    with pytest.raises(ApplicationError) as refused:
        api_key_create(name="nothing", scopes=[])

    assert refused.value.code == "invalid_scope"
    assert not ApiKey.objects.exists()


def test_it_records_last_use_at_most_once_a_minute() -> None:
    # given a key used a few seconds ago
    api_key, raw_key = api_key_create(name="svc", scopes=Scope.values)
    client = client_with(f"Bearer {raw_key}")
    client.get(URL)
    first_use = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first_use is not None

    # when it is used again at once, and again after the recorded use is over a minute old
    client.get(URL)
    unchanged = ApiKey.objects.get(pk=api_key.pk).last_used_at
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - timedelta(minutes=2))
    client.get(URL)

    # then only the stale time was rewritten
    assert unchanged == first_use
    last_use = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert last_use is not None
    assert last_use > first_use
