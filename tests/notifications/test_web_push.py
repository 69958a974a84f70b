"""Web Push through the real pywebpush against a local RFC 8030 push service that checks our VAPID
signature and decrypts each message with the subscription's private key, as the browser would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.push_service_stub import PushServiceStub
from core.vapid import vapid_application_server_key, vapid_private_key_generate
from interventions.models import Delivery
from notifications.services import delivery_send
from personalization.models import PushToken

pytestmark = pytest.mark.django_db

VAPID_KEY = vapid_private_key_generate()
APPLICATION_SERVER_KEY = vapid_application_server_key(VAPID_KEY)


@pytest.fixture
def push_service() -> Iterator[PushServiceStub]:
    stub = PushServiceStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def web_push(providers):
    providers.WEBPUSH_VAPID_PRIVATE_KEY = VAPID_KEY
    providers.WEBPUSH_VAPID_SUBJECT = "mailto:ops@shop.example"
    providers.WEBPUSH_TIMEOUT = 1.0
    providers.NOTIFICATION_PROVIDERS = {**providers.NOTIFICATION_PROVIDERS, "push": ["fcm", "webpush"]}
    return providers


def subscribe(api_client, push_service: PushServiceStub, user_id: str) -> dict:
    """What the JS client does: subscribe with our applicationServerKey, hand the subscription over."""
    subscription = push_service.subscribe(application_server_key=APPLICATION_SERVER_KEY)
    response = api_client(scopes=["push_tokens"]).post(
        f"/api/v1/users/{user_id}/push-tokens",
        {"platform": "web", "subscription": subscription, "app_id": "https://shop.example"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return subscription


def test_it_pushes_to_a_browser_encrypted_to_its_subscription(
    api_client, web_push, push_service, make_delivery
) -> None:
    # given a shopper whose only device is a browser subscribed through the API
    delivery = make_delivery("push", push_tokens=())
    subscribe(api_client, push_service, delivery.intervention.user_id)

    # when the push is sent (FCM first in the list: it has no device of its own, web push takes it)
    outcome = delivery_send(delivery_id=delivery.pk)

    # then the push service checked our VAPID signature and the browser's key decrypted the message
    assert outcome == "sent", push_service.refused
    [message] = push_service.received
    assert message["payload"]["title"] == "You left something behind"
    assert message["payload"]["data"]["delivery_id"] == str(delivery.pk)
    assert message["claims"]["sub"] == "mailto:ops@shop.example"
    assert message["ttl"] > 0
    delivery.refresh_from_db()
    assert delivery.provider == "webpush"
    assert delivery.provider_message_id.endswith(message["message_id"])


def test_it_retires_a_subscription_the_push_service_calls_gone(
    api_client, web_push, push_service, make_delivery
) -> None:
    # given two browsers, one of which unsubscribed since
    delivery = make_delivery("push", push_tokens=())
    user_id = delivery.intervention.user_id
    kept = subscribe(api_client, push_service, user_id)
    gone = subscribe(api_client, push_service, user_id)
    push_service.unsubscribe(gone["endpoint"])

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then the live browser got it and the gone one (410) is retired
    assert outcome == "sent"
    assert [m["subscription_id"] for m in push_service.received] == [kept["endpoint"].rsplit("/", 1)[-1]]
    active = dict(PushToken.objects.filter(profile__user_id=user_id).values_list("token", "is_active"))
    assert active == {kept["endpoint"]: True, gone["endpoint"]: False}


def test_it_fails_over_from_fcm_to_web_push_when_fcm_is_down(
    api_client, web_push, provider_stub, push_service, make_delivery
) -> None:
    # given a shopper with a phone (FCM) and a browser, and FCM answering 503
    delivery = make_delivery("push", push_tokens=("tok-phone",))
    subscribe(api_client, push_service, delivery.intervention.user_id)
    provider_stub.fault("fcm", "error", status=503)

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then the browser got it through the secondary provider, once
    assert outcome == "sent"
    assert len(push_service.received) == 1
    delivery.refresh_from_db()
    assert delivery.provider == "webpush"
    assert provider_stub.push == []


def test_it_keeps_fcm_first_for_a_shopper_with_a_phone(
    api_client, web_push, provider_stub, push_service, make_delivery
) -> None:
    # given a shopper with a phone and a browser, both providers up
    delivery = make_delivery("push", push_tokens=("tok-phone",))
    subscribe(api_client, push_service, delivery.intervention.user_id)

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then FCM, the primary, takes it (a message leaves by one provider only)
    assert outcome == "sent"
    assert [p["message"]["token"] for p in provider_stub.push] == ["tok-phone"]
    assert push_service.received == []
    assert Delivery.objects.get(pk=delivery.pk).provider == "fcm"


def test_it_fails_over_to_a_second_fcm_project_when_the_first_is_down(
    providers, provider_stub, make_delivery
) -> None:
    # given a second Firebase project after the first, and the first answering 503
    providers.FCM_SECONDARY_PROJECT_ID = "ie-test-2"
    providers.FCM_SECONDARY_ENDPOINT = provider_stub.url + "/v1/projects/{}/messages:send"
    providers.NOTIFICATION_PROVIDERS = {**providers.NOTIFICATION_PROVIDERS, "push": ["fcm", "fcm_secondary"]}
    provider_stub.fault("fcm", "error", status=503, account="ie-test")
    delivery = make_delivery("push", push_tokens=("tok-phone",))

    # when
    outcome = delivery_send(delivery_id=delivery.pk)

    # then the second project sent it, once
    assert outcome == "sent"
    assert [p["name"].split("/")[1] for p in provider_stub.push] == ["ie-test-2"]
    assert Delivery.objects.get(pk=delivery.pk).provider == "fcm_secondary"
