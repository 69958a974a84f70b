from __future__ import annotations

from decimal import Decimal

import pytest

from campaigns import services
from campaigns.demo import CAMPAIGN_NAME, SEGMENT_NAME, demo_load
from campaigns.models import AuditEntry, Campaign, Template, TemplateLocalization, Variant
from personalization.models import Segment
from personalization.rendering import sample_context

pytestmark = pytest.mark.django_db


def _state() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (Campaign, Variant, Template, TemplateLocalization, Segment, AuditEntry)
    )


def test_it_loads_a_working_cart_rescue_campaign_once() -> None:
    # when the demo set is loaded twice
    first = demo_load()
    state = _state()
    second = demo_load()

    # then the second load creates and changes nothing
    assert len(first["templates"]) == 8
    assert second == {"templates": [], "segments": [], "campaigns": []}
    assert _state() == state

    # and the campaign is the one the README describes
    campaign = Campaign.objects.get(name=CAMPAIGN_NAME)
    assert (campaign.status, campaign.trigger, campaign.conditions) == (
        "active",
        "prediction.cart_abandonment",
        "score >= 0.7",
    )
    assert campaign.channels == ["onsite", "email", "sms", "push"]
    assert (campaign.channel_strategy, campaign.priority) == ("first_available", 10)
    assert campaign.holdout_percent == Decimal(10)
    assert (campaign.frequency_cap_count, campaign.cooldown_seconds) == (3, 1800)
    assert campaign.exit_events == ["checkout_completed"]
    assert Segment.objects.get(name=SEGMENT_NAME).rules == 'cart.total >= 50 and attributes.tier == "gold"'


def test_it_renders_every_demo_variant_on_every_channel_in_english_and_french() -> None:
    demo_load()
    campaign = Campaign.objects.get(name=CAMPAIGN_NAME)
    variants = {v.name: v for v in campaign.variants.all()}
    assert set(variants) == {"10% discount", "Free shipping"}

    for variant in variants.values():
        for channel in campaign.channels:
            template = variant.template_for(channel)
            assert template is not None
            for locale in ("en", "fr-FR"):
                rendered = services.template_render(
                    template=template, locale=locale, context=sample_context(locale=locale)
                )
                assert rendered["body_text"]
                assert "129" in rendered["body_text"] or "129" in rendered["subject"]

    modal_template = variants["10% discount"].onsite_template
    assert modal_template is not None
    modal = services.template_render(
        template=modal_template,
        locale="en",
        context={"profile": {"first_name": "Ada"}},
    )
    assert modal["kind"] == "modal"
    assert modal["discount_code"] == "RESCUE10"
    assert modal["subject"] == "Wait, Ada! 10% off your cart"
    banner = variants["Free shipping"].onsite_template
    assert banner is not None
    assert banner.onsite_kind == "banner"
