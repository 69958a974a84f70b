from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client, RequestFactory

from api.exceptions import json_500
from api.models import ApiKey
from api.services import api_key_create, api_key_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


def test_the_admin_shows_a_new_key_once_and_stores_its_hash(admin_client) -> None:
    # when an operator adds a key with two scopes
    response = admin_client.post(
        "/admin/api/apikey/add/", {"name": "shop-backend", "scopes": ["events", "ws_tickets"]}, follow=True
    )

    # then the key is in the one-time message, and only its hash is stored
    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="shop-backend")
    shown = next(str(m) for m in get_messages(response.wsgi_request) if "API key created" in str(m))
    raw_key = shown.rsplit(" ", 1)[-1]
    assert api_key.hashed_key == api_key_hash(raw_key)
    assert api_key.scopes == ["events", "ws_tickets"]
    assert raw_key not in admin_client.get(f"/admin/api/apikey/{api_key.pk}/change/").content.decode()


def test_the_admin_add_form_ticks_no_scope_and_refuses_a_key_without_one(admin_client) -> None:
    # when an operator opens the add form, then submits it as it comes
    form = admin_client.get("/admin/api/apikey/add/")
    response = admin_client.post("/admin/api/apikey/add/", {"name": "careless"})

    # then no scope was offered ticked, and no key was created
    assert form.status_code == 200
    assert b'name="scopes"' in form.content
    assert b"checked" not in form.content
    assert response.status_code == 200  # the form again, with its error
    assert not ApiKey.objects.filter(name="careless").exists()


def test_the_admin_revokes_keys(admin_client) -> None:
    api_key, _ = api_key_create(name="old", scopes=["events"])

    admin_client.post(
        "/admin/api/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]}, follow=True
    )

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None


def test_a_server_error_under_api_is_json_and_elsewhere_html() -> None:
    api = json_500(RequestFactory().get("/api/v1/campaigns"))
    page = json_500(RequestFactory().get("/admin/"))

    assert api.status_code == page.status_code == 500
    assert api["Content-Type"] == "application/json"
    assert b'"server_error"' in api.content
    assert page["Content-Type"].startswith("text/html")
