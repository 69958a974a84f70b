from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from campaigns.models import Campaign
from chaos.provider_stub import ProviderStub, SmtpStub
from interventions.models import Delivery, Intervention
from personalization.models import Profile, PushToken


@pytest.fixture
def provider_stub() -> Iterator[ProviderStub]:
    stub = ProviderStub().start()
    stub.state.timeout_seconds = 3.0
    yield stub
    stub.stop()


@pytest.fixture
def smtp_stub() -> Iterator[SmtpStub]:
    stub = SmtpStub().start()
    stub.timeout_seconds = 3.0
    yield stub
    stub.stop()


@pytest.fixture
def providers(settings: Any, provider_stub: ProviderStub, smtp_stub: SmtpStub) -> Any:
    """Every provider pointed at the local servers; retries fast so tests stay short."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_stub.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 1
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_AUTH_TOKEN = "test-auth-token"
    settings.TWILIO_FROM = "+15005550006"
    settings.TWILIO_API_BASE = provider_stub.url
    settings.TWILIO_TIMEOUT = 1.0
    settings.FCM_PROJECT_ID = "ie-test"
    settings.FCM_ENDPOINT = provider_stub.url + "/v1/projects/{}/messages:send"
    settings.FCM_TIMEOUT = 1.0
    settings.NOTIFICATION_PROVIDERS = {"email": ["email"], "sms": ["twilio"], "push": ["fcm"]}
    settings.NOTIFICATION_RATE_LIMITS = {}
    settings.NOTIFICATION_BACKOFF_BASE_SECONDS = 0.05
    settings.NOTIFICATION_BACKOFF_MAX_SECONDS = 0.2
    settings.PUBLIC_URL = "https://shop.example"
    return settings


@pytest.fixture
def campaign(db: None) -> Campaign:
    return Campaign.objects.create(
        name=f"cart rescue {uuid.uuid4().hex[:8]}", trigger="prediction.cart_abandonment", status="active"
    )


@pytest.fixture
def make_delivery(campaign: Campaign) -> Callable[..., Delivery]:
    def make(
        channel: str,
        *,
        content: dict[str, Any] | None = None,
        push_tokens: tuple[str, ...] = ("tok-a",),
        **profile_fields: Any,
    ) -> Delivery:
        user_id = f"u-{uuid.uuid4().hex[:10]}"
        fields: dict[str, Any] = {
            "email": f"{user_id}@example.com",
            "phone": "+33600" + str(uuid.uuid4().int)[:6],
            "consent_sms": True,
            "timezone": "Europe/Paris",
            **profile_fields,
        }
        profile = Profile.objects.create(user_id=user_id, **fields)
        if channel == "push":
            for token in push_tokens:
                PushToken.objects.create(profile=profile, token=token)
        intervention = Intervention.objects.create(
            campaign=campaign,
            profile=profile,
            user_id=user_id,
            trigger_event_id=uuid.uuid4().hex,
            trigger="prediction.cart_abandonment",
            channel=channel,
            content=content
            or {
                "subject": "You left something behind",
                "body_text": f"Your cart is waiting, {user_id}.",
                "body_html": f'<p>Your cart is waiting, {user_id}. <a href="https://shop.example/cart">Cart</a></p>',
                "cta_label": "Back to my cart",
                "cta_url": "https://shop.example/cart?c=1",
            },
        )
        return Delivery.objects.create(intervention=intervention, channel=channel)

    return make
