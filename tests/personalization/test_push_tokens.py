"""Devices registered through the users API and through cart events' ``user.push_tokens``."""

from __future__ import annotations

import pytest
from django.urls import reverse

from delivery.events import InvalidEvent, parse_cart_event
from delivery.services import decisions_process_batch
from personalization.models import Profile, PushToken
from tests import fixtures as f

pytestmark = pytest.mark.django_db

SUBSCRIPTION = {
    "endpoint": "https://push.example.net/wpush/v2/gAAAAABk-abc/def",
    "expirationTime": None,
    "keys": {
        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
        "auth": "tBHItJI5svbpez7KI4CCXg",
    },
}


def test_it_registers_an_android_device_and_refuses_a_key_without_the_scope(api_client) -> None:
    # when an app registers a device
    response = api_client(scopes=["push_tokens"]).post(
        "/api/v1/users/u-dev/push-tokens",
        {"platform": "android", "token": "fcm-abc", "app_id": "com.shop.app"},
        format="json",
    )

    # then the shopper exists with that active token
    assert response.status_code == 201, response.json()
    assert response.json()["token"] == "fcm-abc"
    token = PushToken.objects.get(profile__user_id="u-dev")
    assert (token.token, token.platform, token.app_id, token.is_active) == (
        "fcm-abc",
        "android",
        "com.shop.app",
        True,
    )

    # and a key with only the users scope may not
    refused = api_client(scopes=["users"]).post(
        "/api/v1/users/u-dev/push-tokens", {"platform": "ios", "token": "x"}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"


def test_it_registers_a_browser_subscription_with_its_keys(api_client) -> None:
    response = api_client().post(
        "/api/v1/users/u-web/push-tokens", {"platform": "web", "subscription": SUBSCRIPTION}, format="json"
    )

    assert response.status_code == 201, response.json()
    token = PushToken.objects.get(profile__user_id="u-web")
    assert token.token == SUBSCRIPTION["endpoint"]
    assert token.keys == SUBSCRIPTION["keys"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "web", "token": "https://push.example.net/x"}, "subscription"),
        ({"platform": "web", "subscription": {**SUBSCRIPTION, "keys": {"auth": "x"}}}, "subscription"),
        ({"platform": "android"}, "token"),
        ({"platform": "android", "token": "t", "subscription": SUBSCRIPTION}, "subscription"),
        ({"platform": "blackberry", "token": "t"}, "platform"),
    ],
)
def test_it_refuses_an_incomplete_device_naming_the_field(api_client, body, field) -> None:
    response = api_client().post("/api/v1/users/u-bad/push-tokens", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not PushToken.objects.exists()


def test_it_revives_a_retired_token_and_moves_a_device_to_its_new_shopper(api_client) -> None:
    # given a token retired after the provider called it unregistered, on shopper A
    client = api_client()
    client.post("/api/v1/users/u-a/push-tokens", {"platform": "ios", "token": "t-1"}, format="json")
    PushToken.objects.filter(token="t-1").update(is_active=False)

    # when A's app registers it again
    client.post("/api/v1/users/u-a/push-tokens", {"platform": "ios", "token": "t-1"}, format="json")

    # then it is active again
    assert PushToken.objects.get(token="t-1").is_active

    # when shopper B signs in on the same device
    client.post("/api/v1/users/u-b/push-tokens", {"platform": "ios", "token": "t-1"}, format="json")

    # then the device is B's alone
    assert list(PushToken.objects.filter(token="t-1").values_list("profile__user_id", flat=True)) == ["u-b"]


def test_it_removes_a_device_and_answers_404_for_one_it_does_not_know(api_client) -> None:
    # given a web subscription (its token a URL, slashes included)
    client = api_client()
    client.post(
        "/api/v1/users/u-rm/push-tokens", {"platform": "web", "subscription": SUBSCRIPTION}, format="json"
    )

    # when the app removes it
    response = client.delete(f"/api/v1/users/u-rm/push-tokens/{SUBSCRIPTION['endpoint']}")

    # then it is gone, and removing it again is a 404 in the API's error shape
    assert response.status_code == 204
    assert not PushToken.objects.filter(profile__user_id="u-rm").exists()
    again = client.delete(f"/api/v1/users/u-rm/push-tokens/{SUBSCRIPTION['endpoint']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"


def test_it_refuses_a_device_for_an_erased_shopper(api_client) -> None:
    client = api_client()
    client.post("/api/v1/users/u-gone/push-tokens", {"platform": "ios", "token": "t-g"}, format="json")
    assert client.delete("/api/v1/users/u-gone").status_code == 204

    response = client.post(
        "/api/v1/users/u-gone/push-tokens", {"platform": "ios", "token": "t-g"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "erased"
    assert not PushToken.objects.exists()


def test_it_lists_devices_in_the_export(api_client) -> None:
    client = api_client()
    client.post("/api/v1/users/u-exp/push-tokens", {"platform": "android", "token": "t-e"}, format="json")

    export = client.get("/api/v1/users/u-exp/export").json()

    assert [t["token"] for t in export["push_tokens"]] == ["t-e"]


def test_it_registers_devices_carried_by_cart_events() -> None:
    # given cart events whose user object carries an android token and a browser subscription
    f.campaign(channels=["email"], status="active", variants=["A"])
    user_id = f.unique("u")
    devices = [
        {"platform": "android", "token": "ev-fcm-1", "app_id": "com.shop.app"},
        {"platform": "web", "token": SUBSCRIPTION["endpoint"], "keys": SUBSCRIPTION["keys"]},
    ]
    event = f.cart_event(user_id=user_id, total=20, user={"email": "e@example.com", "push_tokens": devices})

    # when the batch is decided (twice: a replay)
    for _ in range(2):
        decisions_process_batch(events=[event], campaigns=f.active_set(), after_commit=False)

    # then both devices are the shopper's, once each
    tokens = PushToken.objects.filter(profile__user_id=user_id)
    assert {(t.platform, t.token) for t in tokens} == {
        ("android", "ev-fcm-1"),
        ("web", SUBSCRIPTION["endpoint"]),
    }
    assert tokens.get(platform="web").keys == SUBSCRIPTION["keys"]
    assert Profile.objects.get(user_id=user_id).email == "e@example.com"


@pytest.mark.parametrize(
    "devices",
    [
        "tok",
        [{"platform": "fax", "token": "t"}],
        [{"platform": "android", "token": ""}],
        [{"platform": "web", "token": "https://push.example.net/x"}],
    ],
)
def test_it_refuses_a_cart_event_with_malformed_devices(devices) -> None:
    body = f.cart_body(user_id="u-x", total=1, user={"push_tokens": devices})
    with pytest.raises(InvalidEvent):
        parse_cart_event(f.encode(body))


def test_it_shows_registered_devices_on_the_shoppers_admin_page(api_client, marketer_client) -> None:
    # given a device registered through the API
    api_client().post(
        "/api/v1/users/u-adm/push-tokens",
        {"platform": "ios", "token": "apns-token-0123456789abcdefghij", "app_id": "com.shop.ios"},
        format="json",
    )
    profile = Profile.objects.get(user_id="u-adm")

    # when a marketer opens the shopper's page
    page = marketer_client.get(reverse("admin:personalization_profile_change", args=[profile.pk]))

    # then the device is listed with its app
    assert page.status_code == 200
    html = page.content.decode()
    assert "apns-token-0123456789abc…" in html
    assert "com.shop.ios" in html
