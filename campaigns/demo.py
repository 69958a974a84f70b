"""The demo set `make run` loads, so a newcomer opens the admin on a working setup.

A "Cart rescue" campaign fired by ``prediction.cart_abandonment`` when ``score >= 0.7``: on-site first,
then email, SMS and push; two variants (10% discount modal vs free-shipping banner) and a 10% holdout.
Everything goes through the services (validated, audited) and is looked up by name first, so loading
twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from campaigns import services
from campaigns.models import Campaign, Template
from personalization.selectors import segment_named_exists

ACTOR = "demo data"
CAMPAIGN_NAME = "Cart rescue"
SEGMENT_NAME = "Gold tier with a big cart"
SEGMENT_RULES = 'cart.total >= 50 and attributes.tier == "gold"'

_ITEMS_TEXT = "{% for item in cart.items %}- {{ item.name }} x{{ item.quantity }}\n{% endfor %}"
_ITEMS_HTML = (
    "<ul>{% for item in cart.items %}<li>{{ item.name }} &times; {{ item.quantity }} — "
    "{{ item.price|money(cart.currency) }}</li>{% endfor %}</ul>"
)
_TOTAL = "{{ cart.total|money(cart.currency) }}"
_CART_URL = "{{ links.cart_url|default('https://shop.example.com/cart') }}"

DISCOUNT: dict[str, dict[str, dict[str, str]]] = {
    "onsite": {
        "en": {
            "subject": "Wait, {{ profile.first_name or 'there' }}! 10% off your cart",
            "body_text": "Your {{ cart.item_count }} items ({{ cart.total|money(cart.currency) }}) are still "
            "waiting. Use {{ discount_code }} at checkout for 10% off.",
            "cta_label": "Apply my 10%",
            "cta_url": _CART_URL,
            "discount_code": "RESCUE10",
        },
        "fr": {
            "subject": "Attendez, {{ profile.first_name or 'vous' }} ! -10 % sur votre panier",
            "body_text": "Vos {{ cart.item_count }} articles ({{ cart.total|money(cart.currency) }}) vous "
            "attendent. Code {{ discount_code }} : -10 % au paiement.",
            "cta_label": "Profiter de -10 %",
            "cta_url": _CART_URL,
            "discount_code": "RESCUE10",
        },
    },
    "email": {
        "en": {
            "subject": "{{ profile.first_name or 'Hi' }}, your cart is 10% cheaper today",
            "body_text": "Hi {{ profile.first_name or 'there' }},\n\nYou left these in your cart:\n"
            + _ITEMS_TEXT
            + "Total: "
            + _TOTAL
            + "\n\nUse {{ discount_code }} for 10% off: "
            + _CART_URL
            + "\n\nUnsubscribe: {{ links.unsubscribe_url }}",
            "body_html": "<p>Hi {{ profile.first_name or 'there' }},</p><p>You left these in your "
            "cart:</p>" + _ITEMS_HTML + "<p>Total: <strong>" + _TOTAL + "</strong></p><p>Use "
            "<strong>{{ discount_code }}</strong> for 10% off.</p>"
            '<p><a href="{{ links.click_url|default(links.cart_url) }}">Back to my cart</a></p>'
            '<p style="font-size:12px"><a href="{{ links.unsubscribe_url }}">Unsubscribe</a></p>',
            "cta_label": "Back to my cart",
            "cta_url": _CART_URL,
            "discount_code": "RESCUE10",
        },
        "fr": {
            "subject": "{{ profile.first_name or 'Bonjour' }}, -10 % sur votre panier aujourd'hui",
            "body_text": "Bonjour {{ profile.first_name or '' }},\n\n"
            + "Vous avez laissé dans votre panier :\n"
            + _ITEMS_TEXT
            + "Total : "
            + _TOTAL
            + "\n\nCode {{ discount_code }} : -10 % : "
            + _CART_URL
            + "\n\nSe désabonner : {{ links.unsubscribe_url }}",
            "body_html": "<p>Bonjour {{ profile.first_name or '' }},</p><p>Vous avez laissé dans "
            "votre panier :</p>" + _ITEMS_HTML + "<p>Total : <strong>" + _TOTAL + "</strong></p><p>Code "
            "<strong>{{ discount_code }}</strong> : -10 %.</p>"
            '<p><a href="{{ links.click_url|default(links.cart_url) }}">Retour au panier</a></p>'
            '<p style="font-size:12px"><a href="{{ links.unsubscribe_url }}">Se désabonner</a></p>',
            "cta_label": "Retour au panier",
            "cta_url": _CART_URL,
            "discount_code": "RESCUE10",
        },
    },
    "sms": {
        "en": {
            "body_text": "{{ profile.first_name or 'Hi' }}, your cart (" + _TOTAL + ") is waiting: "
            "10% off with {{ discount_code }}. {{ links.click_url|default(links.cart_url) }}",
            "discount_code": "RESCUE10",
        },
        "fr": {
            "body_text": "{{ profile.first_name or 'Bonjour' }}, votre panier (" + _TOTAL + ") vous "
            "attend : -10 % avec {{ discount_code }}. {{ links.click_url|default(links.cart_url) }}",
            "discount_code": "RESCUE10",
        },
    },
    "push": {
        "en": {
            "subject": "10% off your cart",
            "body_text": "{{ cart.item_count }} items, " + _TOTAL + ". Code {{ discount_code }}.",
            "cta_url": _CART_URL,
            "discount_code": "RESCUE10",
        },
        "fr": {
            "subject": "-10 % sur votre panier",
            "body_text": "{{ cart.item_count }} articles, " + _TOTAL + ". Code {{ discount_code }}.",
            "cta_url": _CART_URL,
            "discount_code": "RESCUE10",
        },
    },
}

SHIPPING: dict[str, dict[str, dict[str, str]]] = {
    "onsite": {
        "en": {
            "subject": "Free shipping on your cart",
            "body_text": "{{ profile.first_name or 'Good news' }}: your "
            + _TOTAL
            + " order ships free if you check out now.",
            "cta_label": "Check out",
            "cta_url": _CART_URL,
        },
        "fr": {
            "subject": "Livraison offerte sur votre panier",
            "body_text": "{{ profile.first_name or 'Bonne nouvelle' }} : votre commande de "
            + _TOTAL
            + " est livrée gratuitement si vous la validez maintenant.",
            "cta_label": "Valider mon panier",
            "cta_url": _CART_URL,
        },
    },
    "email": {
        "en": {
            "subject": "Free shipping on the {{ cart.item_count }} items in your cart",
            "body_text": "Hi {{ profile.first_name or 'there' }},\n\n"
            + _ITEMS_TEXT
            + "Total: "
            + _TOTAL
            + ", shipping on us.\n"
            + _CART_URL
            + "\n\nUnsubscribe: {{ links.unsubscribe_url }}",
            "body_html": "<p>Hi {{ profile.first_name or 'there' }},</p>" + _ITEMS_HTML + "<p>Total: "
            "<strong>" + _TOTAL + "</strong>, shipping on us.</p>"
            '<p><a href="{{ links.click_url|default(links.cart_url) }}">Check out</a></p>'
            '<p style="font-size:12px"><a href="{{ links.unsubscribe_url }}">Unsubscribe</a></p>',
            "cta_label": "Check out",
            "cta_url": _CART_URL,
        },
        "fr": {
            "subject": "Livraison offerte pour les {{ cart.item_count }} articles de votre panier",
            "body_text": "Bonjour {{ profile.first_name or '' }},\n\n"
            + _ITEMS_TEXT
            + "Total : "
            + _TOTAL
            + ", livraison offerte.\n"
            + _CART_URL
            + "\n\nSe désabonner : {{ links.unsubscribe_url }}",
            "body_html": "<p>Bonjour {{ profile.first_name or '' }},</p>" + _ITEMS_HTML + "<p>Total : "
            "<strong>" + _TOTAL + "</strong>, livraison offerte.</p>"
            '<p><a href="{{ links.click_url|default(links.cart_url) }}">Valider mon panier</a></p>'
            '<p style="font-size:12px"><a href="{{ links.unsubscribe_url }}">Se désabonner</a></p>',
            "cta_label": "Valider mon panier",
            "cta_url": _CART_URL,
        },
    },
    "sms": {
        "en": {
            "body_text": "{{ profile.first_name or 'Hi' }}, free shipping on your " + _TOTAL + " cart "
            "today. {{ links.click_url|default(links.cart_url) }}",
        },
        "fr": {
            "body_text": "{{ profile.first_name or 'Bonjour' }}, livraison offerte sur votre panier de "
            + _TOTAL
            + " aujourd'hui. {{ links.click_url|default(links.cart_url) }}",
        },
    },
    "push": {
        "en": {
            "subject": "Free shipping today",
            "body_text": "Your " + _TOTAL + " cart ships free. Tap to check out.",
            "cta_url": _CART_URL,
        },
        "fr": {
            "subject": "Livraison offerte aujourd'hui",
            "body_text": "Votre panier de " + _TOTAL + " est livré gratuitement.",
            "cta_url": _CART_URL,
        },
    },
}

VARIANTS: tuple[tuple[str, str, str, dict[str, dict[str, dict[str, str]]]], ...] = (
    ("10% discount", "Cart rescue / 10% discount", "modal", DISCOUNT),
    ("Free shipping", "Cart rescue / free shipping", "banner", SHIPPING),
)


def _template(name: str, channel: str, onsite_kind: str, content: dict[str, dict[str, str]]) -> Template:
    existing = Template.objects.filter(name=name).first()
    if existing is not None:
        return existing
    return services.template_create(
        data={
            "name": name,
            "channel": channel,
            "onsite_kind": onsite_kind if channel == "onsite" else "",
            "default_locale": "en",
            "description": "Demo content",
        },
        localizations=[{"locale": locale, **fields} for locale, fields in content.items()],
        actor_label=ACTOR,
    )


@transaction.atomic
def demo_load() -> dict[str, Any]:
    """Create what is missing of the demo set; returns what was created (empty lists the second time)."""
    created: dict[str, list[str]] = {"templates": [], "segments": [], "campaigns": []}
    variants: list[dict[str, Any]] = []
    for variant_name, prefix, kind, content in VARIANTS:
        templates: dict[str, Any] = {}
        for channel in ("onsite", "email", "sms", "push"):
            name = f"{prefix} ({channel})"
            is_new = not Template.objects.filter(name=name).exists()
            templates[f"{channel}_template"] = _template(name, channel, kind, content[channel])
            if is_new:
                created["templates"].append(name)
        variants.append({"name": variant_name, "weight": 1, "is_control": False, **templates})

    if not segment_named_exists(name=SEGMENT_NAME):
        services.segment_create(
            name=SEGMENT_NAME,
            rules=SEGMENT_RULES,
            description="Gold-tier shoppers holding at least 50 in their cart",
            actor_label=ACTOR,
        )
        created["segments"].append(SEGMENT_NAME)

    if not Campaign.objects.filter(name=CAMPAIGN_NAME).exists():
        services.campaign_create(
            data={
                "name": CAMPAIGN_NAME,
                "description": "Rescue carts the model expects to be abandoned: on-site first, then "
                "email, SMS and push. 10% of shoppers are held out to measure the real lift.",
                "kind": Campaign.Kind.TRIGGERED,
                "status": Campaign.Status.ACTIVE,
                "trigger": "prediction.cart_abandonment",
                "conditions": "score >= 0.7",
                "exit_events": ["checkout_completed"],
                "channels": ["onsite", "email", "sms", "push"],
                "channel_strategy": Campaign.ChannelStrategy.FIRST_AVAILABLE,
                "priority": 10,
                "frequency_cap_count": 3,
                "frequency_cap_window_seconds": 86400,
                "cooldown_seconds": 1800,
                "holdout_percent": 10,
                "conversion_goal": "checkout_completed",
                "attribution_window_seconds": 86400,
            },
            variants=variants,
            actor_label=ACTOR,
        )
        created["campaigns"].append(CAMPAIGN_NAME)
    return created
