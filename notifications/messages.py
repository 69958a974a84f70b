"""What goes to the provider for a delivery: subject, text, HTML and headers, every link signed.

Deterministic for a given delivery, so a provider lookup after an interrupted send recognises the
message an earlier attempt handed over.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.html import escape

from interventions.models import Delivery
from notifications.providers.base import OutgoingMessage
from notifications.signed_links import click_url, open_pixel_url, unsubscribe_url
from personalization.models import Profile
from personalization.selectors import push_tokens_active

_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)
# A character reference ending in ";" (named or numeric). Inside an attribute a browser decodes only these:
# a legacy name without ";" followed by "=" or a letter ("?a=1&copy=2") stays as written.
_CHARACTER_REFERENCE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _attribute_value(raw: str) -> str:
    """The URL a mail client follows for ``href="raw"``: the attribute's character references decoded
    (``&amp;`` is ``&``). Signing the raw text would redirect to ``?a=1&amp;b=2``."""
    return _CHARACTER_REFERENCE.sub(lambda match: unescape(match.group(0)), raw)


def _content(delivery: Delivery) -> dict[str, Any]:
    """The intervention's rendered content for this channel (per-channel dict, or one flat dict)."""
    content: dict[str, Any] = delivery.intervention.content or {}
    nested = content.get(delivery.channel)
    return nested if isinstance(nested, dict) else content


def message_build(*, delivery: Delivery, push_tokens: tuple[str, ...] | None = None) -> OutgoingMessage:
    """What goes to the provider; deterministic, so a lookup can recognise an earlier attempt.

    ``push_tokens``: the shopper's active tokens when the caller loaded them already (a batch does).
    """
    intervention = delivery.intervention
    profile = intervention.profile
    content = _content(delivery)
    subject = str(content.get("subject") or content.get("title") or "")
    text = str(content.get("body_text") or content.get("body") or "")
    cta_url = str(content.get("cta_url") or "")
    delivery_id = str(delivery.pk)
    if delivery.channel == "email":
        return _email_message(delivery=delivery, profile=profile, subject=subject, text=text, content=content)
    if delivery.channel == "sms":
        if cta_url:
            text = f"{text} {click_url(delivery_id=delivery_id, target=cta_url)}".strip()
        return OutgoingMessage(
            delivery_id=delivery_id,
            channel="sms",
            to=profile.phone,
            text=text,
            status_callback=settings.TWILIO_STATUS_CALLBACK_URL,
        )
    tokens = push_tokens
    if tokens is None:
        tokens = tuple(push_tokens_active(profile_ids=[profile.pk]).get(profile.pk, ()))
    data = {"intervention_id": str(intervention.pk)}
    if cta_url:
        data["url"] = click_url(delivery_id=delivery_id, target=cta_url)
    return OutgoingMessage(
        delivery_id=delivery_id,
        channel="push",
        to=tokens[0] if tokens else "",
        subject=subject,
        text=text,
        data=data,
        tokens=tokens,
    )


def _email_message(
    *, delivery: Delivery, profile: Profile, subject: str, text: str, content: dict[str, Any]
) -> OutgoingMessage:
    delivery_id = str(delivery.pk)
    unsubscribe = unsubscribe_url(delivery_id=delivery_id, profile_id=profile.pk)
    cta_url = str(content.get("cta_url") or "")
    body_html = str(content.get("body_html") or content.get("html") or "")
    if not body_html and text:
        body_html = "<p>" + escape(text).replace("\n", "<br>") + "</p>"
    # Every http(s) link goes through the signed click redirect.
    body_html = _HREF.sub(
        lambda match: (
            f'href="{escape(click_url(delivery_id=delivery_id, target=_attribute_value(match.group(1))))}"'
        ),
        body_html,
    )
    html = render_to_string(
        "notifications/email.html",
        {
            "subject": subject,
            "body_html": body_html,
            "cta_label": content.get("cta_label") or "",
            "cta_url": click_url(delivery_id=delivery_id, target=cta_url) if cta_url else "",
            "image_url": content.get("image_url") or "",
            "unsubscribe_url": unsubscribe,
            "pixel_url": open_pixel_url(delivery_id=delivery_id),
        },
    )
    text_lines = [text]
    if cta_url:
        text_lines.append(
            f"{content.get('cta_label') or cta_url}: {click_url(delivery_id=delivery_id, target=cta_url)}"
        )
    text_lines.append(f"Unsubscribe: {unsubscribe}")
    mailto = f"mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe"
    return OutgoingMessage(
        delivery_id=delivery_id,
        channel="email",
        to=profile.email,
        subject=subject,
        text="\n\n".join(line for line in text_lines if line),
        html=html,
        # RFC 2369 + RFC 8058: mail clients show a one-click unsubscribe that POSTs to the https URL.
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>, <{mailto}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
