from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chaos.provider_stub import ProviderStub, SmtpStub


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
