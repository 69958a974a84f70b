"""Small builders for campaign tests, going through the services like the admin and the API do."""

from __future__ import annotations

import itertools
from typing import Any

from campaigns import services
from campaigns.models import Campaign, Template

_numbers = itertools.count(1)

CONTENT: dict[str, dict[str, str]] = {
    "onsite": {
        "subject": "Hi {{ first_name }}",
        "body_text": "Your cart: {{ cart.total|money(cart.currency) }}",
    },
    "email": {
        "subject": "Your cart",
        "body_text": "Hi {{ first_name }}",
        "body_html": "<p>Hi {{ first_name }}</p>",
    },
    "sms": {"body_text": "Cart {{ cart.total }} waiting"},
    "push": {"subject": "Your cart", "body_text": "{{ cart.item_count }} items waiting"},
}


def make_template(
    channel: str = "onsite", *, name: str | None = None, locales: tuple[str, ...] = ("en",)
) -> Template:
    return services.template_create(
        data={
            "name": name or f"{channel} template {next(_numbers)}",
            "channel": channel,
            "onsite_kind": "modal" if channel == "onsite" else "",
        },
        localizations=[{"locale": locale, **CONTENT[channel]} for locale in locales],
        actor_label="test",
    )


def make_campaign(
    *,
    channels: tuple[str, ...] = ("onsite",),
    status: str = "draft",
    variants: list[dict[str, Any]] | None = None,
    **data: Any,
) -> Campaign:
    if variants is None:
        templates = {f"{c}_template": make_template(c) for c in dict.fromkeys(channels) if c in CONTENT}
        variants = [
            {"name": "A", "weight": 1, **templates},
            {"name": "Control", "weight": 1, "is_control": True},
        ]
    return services.campaign_create(
        data={
            "name": f"Campaign {next(_numbers)}",
            "trigger": "prediction.cart_abandonment",
            "conditions": "score >= 0.7",
            "channels": list(channels),
            "status": status,
            **data,
        },
        variants=variants,
        actor_label="test",
    )
