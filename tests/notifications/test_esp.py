"""Email through an ESP: django-anymail's Postmark backend against the local Postmark-protocol stub."""

from __future__ import annotations

import pytest

from chaos.provider_stub import ProviderStub
from interventions.models import Delivery
from notifications.services import delivery_send
from personalization.models import Profile
from tests.fixtures import send_until_settled

pytestmark = pytest.mark.django_db


@pytest.fixture
def postmark(providers, provider_stub: ProviderStub):
    providers.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    providers.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token", "POSTMARK_API_URL": provider_stub.url + "/"}
    return providers


def test_it_sends_through_the_esp_and_keeps_its_message_id(postmark, provider_stub, make_delivery):
    # given
    delivery = make_delivery("email")

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then the ESP's id is what its webhooks will name
    delivery.refresh_from_db()
    [sent] = provider_stub.email
    headers = {h["Name"]: h["Value"] for h in sent["Headers"]}
    assert outcome == "sent"
    assert delivery.provider_message_id == sent["message_id"]
    assert sent["Metadata"] == {"delivery_id": str(delivery.pk)}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_it_fails_an_inactive_recipient_at_once(postmark, provider_stub, make_delivery):
    # given an address Postmark marked inactive (hard bounce before)
    delivery = make_delivery("email", email="bounce-old@example.com")

    # when
    outcomes = send_until_settled(delivery)

    # then
    assert outcomes == ["failed"]
    assert delivery.error_kind == "permanent"
    assert Profile.objects.get(pk=delivery.intervention.profile_id).email_suppressed_at is not None


def test_it_retries_an_esp_outage(postmark, provider_stub, make_delivery):
    # given Postmark answers 500 twice
    provider_stub.fault("postmark", "error", status=500, times=2)
    delivery = make_delivery("email")

    # when
    outcomes = send_until_settled(delivery)

    # then
    assert outcomes == ["retry", "retry", "sent"]
    assert delivery.status == Delivery.Status.SENT
    assert len(provider_stub.email) == 1
