"""Email through Django's mail backends: django-anymail for an ESP, SMTP or the file sink otherwise.

Whatever backend the settings name, the message is an ``AnymailMessage``: an ESP backend uses its extras
(metadata, tags, the ESP's message id for webhooks); SMTP and the file sink send it as plain MIME.
The Message-ID is derived from the delivery id, so a message can be matched to its delivery in any
mailbox or ESP log, and ESPs that de-duplicate on Message-ID do so.
"""

from __future__ import annotations

import smtplib
from datetime import datetime
from typing import Any

import environ
import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import get_connection

from notifications.providers.base import (
    LookupResult,
    OutgoingMessage,
    PermanentProviderError,
    SendResult,
    TransientProviderError,
    UnknownOutcomeError,
)


def _connection_kwargs(url: str) -> dict[str, Any]:
    config = environ.Env.email_url_config(url)
    kwargs: dict[str, Any] = {"backend": config.get("EMAIL_BACKEND")}
    for key, arg in (
        ("EMAIL_HOST", "host"),
        ("EMAIL_PORT", "port"),
        ("EMAIL_HOST_USER", "username"),
        ("EMAIL_HOST_PASSWORD", "password"),
        ("EMAIL_USE_TLS", "use_tls"),
        ("EMAIL_USE_SSL", "use_ssl"),
        ("EMAIL_FILE_PATH", "file_path"),
    ):
        if key in config:
            kwargs[arg] = config[key]
    return kwargs


class EmailProvider:
    can_lookup = False
    channel = "email"

    def __init__(self, *, name: str, url: str = "") -> None:
        self.name = name
        # Empty URL: the settings' own EMAIL_BACKEND / EMAIL_HOST (EMAIL_URL or the var/mail sink).
        self._kwargs = _connection_kwargs(url) if url else {}

    def send(self, message: OutgoingMessage) -> SendResult:
        message_id = f"<{message.delivery_id}@intervention-engine>"
        email = AnymailMessage(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers={"Message-ID": message_id, **message.headers},
            metadata={"delivery_id": message.delivery_id},
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT, **self._kwargs)
        try:
            connection.send_messages([email])
        except AnymailRecipientsRefused as error:
            raise PermanentProviderError(str(error), subject="address") from error
        except AnymailAPIError as error:
            status = getattr(error, "status_code", None)
            if isinstance(error.__cause__, requests.Timeout):
                raise UnknownOutcomeError(str(error)) from error
            if status is not None and 400 <= status < 500 and status != 429:
                raise PermanentProviderError(str(error), response={"status": status}) from error
            raise TransientProviderError(str(error), response={"status": status}) from error
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentProviderError(
                    str(error), subject="address", response={"codes": codes}
                ) from error
            raise TransientProviderError(str(error), response={"codes": codes}) from error
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            detail = error.smtp_error
            text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
            response = {"code": error.smtp_code, "message": text}
            if error.smtp_code >= 500:
                raise PermanentProviderError(str(error), response=response) from error
            raise TransientProviderError(str(error), response=response) from error
        except TimeoutError as error:
            # The DATA may have been accepted before the answer was lost: never guess.
            raise UnknownOutcomeError(f"timed out: {error}") from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransientProviderError(f"{type(error).__name__}: {error}") from error
        status = getattr(email, "anymail_status", None)
        esp_id = getattr(status, "message_id", None) if status is not None else None
        return SendResult(
            provider_message_id=str(esp_id or message_id),
            response={"backend": type(connection).__module__, "message_id": str(esp_id or message_id)},
        )

    def lookup(self, message: OutgoingMessage, *, sent_after: datetime) -> LookupResult | None:
        # SMTP and most ESPs offer no "did you accept this?" query: an unknown send waits for an operator.
        return None
