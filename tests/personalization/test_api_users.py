from __future__ import annotations

from datetime import time

import pytest

from campaigns.models import Campaign
from interventions.models import Delivery, Intervention
from personalization.models import Profile, PushToken
from personalization.signals import profile_exporting

pytestmark = pytest.mark.django_db


@pytest.fixture
def shopper() -> Profile:
    profile = Profile.objects.create(
        user_id="u-42",
        email="ada@example.com",
        phone="+33600000000",
        first_name="Ada",
        locale="fr-FR",
        timezone="Europe/Paris",
        attributes={"tier": "gold"},
        last_cart={"total": 129.9},
        quiet_hours_start=time(22),
        quiet_hours_end=time(8),
    )
    PushToken.objects.create(profile=profile, token="fcm-token-1")
    return profile


def test_it_reads_preferences(api_client, shopper) -> None:
    response = api_client(scopes=["users"]).get("/api/v1/users/u-42/preferences")

    assert response.status_code == 200
    assert response.json() == {
        "user_id": "u-42",
        "consent": {"onsite": True, "email": True, "sms": False, "push": True},
        "quiet_hours": {"start": "22:00", "end": "08:00"},
        "timezone": "Europe/Paris",
        "locale": "fr-FR",
        "email": "ada@example.com",
        "phone": "+33600000000",
    }


def test_it_changes_only_the_preferences_sent(api_client, shopper) -> None:
    # when consent for SMS is given and quiet hours cleared
    response = api_client().put(
        "/api/v1/users/u-42/preferences",
        {"consent": {"sms": True, "email": False}, "quiet_hours": None, "timezone": "America/New_York"},
        format="json",
    )

    # then those change and the rest stays
    assert response.status_code == 200, response.json()
    shopper.refresh_from_db()
    assert (shopper.consent_sms, shopper.consent_email, shopper.consent_push) == (True, False, True)
    assert shopper.quiet_hours_start is None
    assert shopper.timezone == "America/New_York"
    assert shopper.locale == "fr-FR"
    assert response.json()["quiet_hours"] is None


def test_it_records_preferences_for_a_shopper_not_seen_yet(api_client) -> None:
    response = api_client().put(
        "/api/v1/users/new-user/preferences",
        {"consent": {"email": False}, "quiet_hours": {"start": "21:30", "end": "07:00"}},
        format="json",
    )

    assert response.status_code == 200
    profile = Profile.objects.get(user_id="new-user")
    assert profile.consent_email is False
    assert (profile.quiet_hours_start, profile.quiet_hours_end) == (time(21, 30), time(7))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"locale": "not a locale"}, "locale"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "quiet_hours"),
        ({"consent": "yes"}, "consent"),
    ],
)
def test_it_refuses_invalid_preferences_naming_the_field(api_client, shopper, body, field) -> None:
    response = api_client().put("/api/v1/users/u-42/preferences", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]
    shopper.refresh_from_db()
    assert shopper.timezone == "Europe/Paris"


def test_it_erases_a_shopper_and_keeps_the_row(api_client, shopper) -> None:
    # when the shopper is erased
    response = api_client().delete("/api/v1/users/u-42")

    # then personal data and push tokens are gone, consent withdrawn, and the pseudonymous row stays
    assert response.status_code == 204
    shopper.refresh_from_db()
    assert (shopper.email, shopper.phone, shopper.first_name) == ("", "", "")
    assert shopper.attributes == {}
    assert shopper.last_cart == {}
    assert not any(shopper.has_consent(c) for c in ("onsite", "email", "sms", "push"))
    assert shopper.erased_at is not None
    assert not PushToken.objects.filter(profile=shopper).exists()

    # and erasing again is harmless
    assert api_client().delete("/api/v1/users/u-42").status_code == 204


def test_it_answers_404_when_erasing_an_unknown_shopper(api_client) -> None:
    response = api_client().delete("/api/v1/users/nobody")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_exports_everything_held_about_a_shopper(api_client, shopper) -> None:
    # given an app above personalization that contributes its data to exports
    def loyalty(sender, profile, **kwargs):
        return {"loyalty": [{"user_id": profile.user_id, "points": 10}]}

    profile_exporting.connect(loyalty, dispatch_uid="test-export")
    try:
        response = api_client().get("/api/v1/users/u-42/export")
    finally:
        profile_exporting.disconnect(dispatch_uid="test-export")

    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "u-42"
    assert body["profile"]["email"] == "ada@example.com"
    assert body["profile"]["attributes"] == {"tier": "gold"}
    assert [t["token"] for t in body["push_tokens"]] == ["fcm-token-1"]
    assert body["loyalty"] == [{"user_id": "u-42", "points": 10}]
    assert body["interventions"] == []


def test_it_needs_the_users_scope(api_client, shopper) -> None:
    client = api_client(scopes=["campaigns"])

    assert client.get("/api/v1/users/u-42/export").status_code == 403
    assert client.delete("/api/v1/users/u-42").status_code == 403
    shopper.refresh_from_db()
    assert shopper.email == "ada@example.com"


def test_it_keeps_interventions_anonymised_after_erase_and_exports_them_before(api_client, shopper) -> None:
    # given an intervention rendered with the shopper's name, and delivered by email
    campaign = Campaign.objects.create(name="Cart", trigger="cart_abandoned")
    intervention = Intervention.objects.create(
        campaign=campaign,
        profile=shopper,
        user_id="u-42",
        session_id="s-9",
        trigger_event_id="e-1",
        trigger="cart_abandoned",
        channel="email",
        content={"subject": "Ada, your cart is waiting"},
        context={"user": {"email": "ada@example.com"}},
    )
    Delivery.objects.create(
        intervention=intervention, channel="email", provider_response={"to": "ada@example.com"}
    )
    client = api_client()

    # when the shopper exports, then is erased
    exported = client.get("/api/v1/users/u-42/export").json()
    client.delete("/api/v1/users/u-42")

    # then the export held the intervention, and afterwards it stays for results, without personal data
    assert exported["interventions"][0]["content"] == {"subject": "Ada, your cart is waiting"}
    assert exported["interventions"][0]["deliveries"][0]["channel"] == "email"
    intervention.refresh_from_db()
    assert intervention.content == {}
    assert intervention.context == {}
    assert intervention.session_id == ""
    assert intervention.campaign_id == campaign.pk
    assert Delivery.objects.get(intervention=intervention).provider_response == {}


@pytest.mark.parametrize("user_id", ["a%00b", "x" * 300, "%F0%9F%92%A9", "a%20b"])
def test_it_never_fails_on_odd_user_ids(api_client, user_id) -> None:
    client = api_client()

    responses = [
        client.get(f"/api/v1/users/{user_id}/preferences"),
        client.put(f"/api/v1/users/{user_id}/preferences", {"locale": "en"}, format="json"),
        client.get(f"/api/v1/users/{user_id}/export"),
        client.delete(f"/api/v1/users/{user_id}"),
    ]

    assert all(r.status_code < 500 for r in responses), [r.status_code for r in responses]
