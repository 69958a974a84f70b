"""The provider registry: names in ``NOTIFICATION_PROVIDERS`` → configured provider objects.

Providers hold connection pools (HTTP sessions, a Firebase app), so each is built once per process and
rebuilt only when the settings change (tests override them).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from core.errors import ApplicationError
from notifications.providers.base import (
    LookupResult,
    OutgoingMessage,
    Provider,
    SendResult,
    TransientProviderError,
)

_cache: dict[str, Provider] = {}
_lock = threading.Lock()


def _build(name: str) -> Provider:
    if name == "email":
        from notifications.providers.email import EmailProvider

        return EmailProvider(name=name)
    if name == "email_secondary":
        from notifications.providers.email import EmailProvider

        return EmailProvider(name=name, url=settings.EMAIL_SECONDARY_URL)
    if name in ("twilio", "twilio_secondary"):
        from notifications.providers.sms import TwilioSmsProvider

        prefix = "TWILIO_SECONDARY_" if name == "twilio_secondary" else "TWILIO_"
        return TwilioSmsProvider(
            name=name,
            account_sid=getattr(settings, f"{prefix}ACCOUNT_SID"),
            auth_token=getattr(settings, f"{prefix}AUTH_TOKEN"),
            from_=getattr(settings, f"{prefix}FROM"),
            api_base=getattr(settings, f"{prefix}API_BASE"),
            timeout=settings.TWILIO_TIMEOUT,
        )
    if name in ("fcm", "fcm_secondary"):
        from notifications.providers.push import FcmPushProvider

        prefix = "FCM_SECONDARY_" if name == "fcm_secondary" else "FCM_"
        return FcmPushProvider(
            name=name,
            project_id=getattr(settings, f"{prefix}PROJECT_ID"),
            credentials_file=getattr(settings, f"{prefix}CREDENTIALS_FILE"),
            endpoint=getattr(settings, f"{prefix}ENDPOINT"),
            timeout=settings.FCM_TIMEOUT,
        )
    if name == "webpush":
        from notifications.providers.push import WebPushProvider

        return WebPushProvider(
            name=name,
            vapid_private_key=settings.WEBPUSH_VAPID_PRIVATE_KEY,
            subject=settings.WEBPUSH_VAPID_SUBJECT,
            ttl=settings.WEBPUSH_TTL_SECONDS,
            timeout=settings.WEBPUSH_TIMEOUT,
        )
    raise ApplicationError(f"Unknown notification provider {name!r}", code="unknown_provider")


class UnconfiguredProvider:
    """Stands in for a provider whose settings are missing: every send fails transiently (so the next
    provider is tried and the delivery waits visibly in the ledger) instead of crashing the worker or
    beat's sweeps."""

    can_lookup = False

    def __init__(self, *, name: str, channel: str, reason: str) -> None:
        self.name, self.channel, self.reason = name, channel, reason

    def send(self, message: OutgoingMessage) -> SendResult:
        raise TransientProviderError(f"{self.name} is not configured: {self.reason}")

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        return None


_REQUIRED = {
    "twilio": ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"),
    "twilio_secondary": (
        "TWILIO_SECONDARY_ACCOUNT_SID",
        "TWILIO_SECONDARY_AUTH_TOKEN",
        "TWILIO_SECONDARY_FROM",
    ),
    "fcm": ("FCM_PROJECT_ID",),
    "fcm_secondary": ("FCM_SECONDARY_PROJECT_ID",),
    "webpush": ("WEBPUSH_VAPID_PRIVATE_KEY",),
    "email_secondary": ("EMAIL_SECONDARY_URL",),
}
_CHANNEL = {
    "email": "email",
    "email_secondary": "email",
    "twilio": "sms",
    "twilio_secondary": "sms",
    "fcm": "push",
    "fcm_secondary": "push",
    "webpush": "push",
}


def provider_get(name: str) -> Provider:
    provider = _cache.get(name)
    if provider is None:
        with _lock:
            provider = _cache.get(name)
            if provider is None:
                missing = [key for key in _REQUIRED.get(name, ()) if not getattr(settings, key)]
                if missing:
                    provider = UnconfiguredProvider(
                        name=name, channel=_CHANNEL.get(name, ""), reason=f"set {', '.join(missing)}"
                    )
                else:
                    provider = _build(name)
                _cache[name] = provider
    return provider


def providers_for(channel: str) -> list[Provider]:
    return [provider_get(name) for name in settings.NOTIFICATION_PROVIDERS.get(channel, [])]


@receiver(setting_changed)
def _forget_providers(**kwargs: Any) -> None:
    setting: str = kwargs["setting"]
    if setting.startswith(("TWILIO_", "FCM_", "WEBPUSH_", "EMAIL_", "NOTIFICATION_", "ANYMAIL")):
        _cache.clear()
