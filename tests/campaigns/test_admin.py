"""The marketers' back office, driven as a marketer would: through the admin's pages and forms."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from campaigns.models import AuditEntry, Campaign, Template
from campaigns.services import campaign_activate, campaign_create, segment_create
from interventions.models import Intervention
from messaging.models import OutboxMessage
from personalization.models import Profile, PushToken, Segment
from tests.fixtures import build_cart_rescue
from tracking.models import Conversion, TrackingEvent

pytestmark = pytest.mark.django_db


class _FormReader(HTMLParser):
    """What a browser would submit for the admin's change form, read from the rendered page."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self.select: str | None = None
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((name, a.get("value") or "on"))
            elif kind not in ("submit", "button", "image", "file"):
                self.fields.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self.select = name
        elif tag == "option" and self.select and "selected" in a:
            self.fields.append((self.select, a.get("value", "")))
        elif tag == "textarea" and name:
            self.textarea, self.text = name, ""

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.fields.append((self.textarea, self.text.removeprefix("\n")))
            self.textarea = None


def form_data(response, form_id: str) -> dict[str, list[str]]:
    reader = _FormReader(form_id)
    reader.feed(response.content.decode())
    data: dict[str, list[str]] = {}
    for name, value in reader.fields:
        data.setdefault(name, []).append(value)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- Every page renders for a marketer --------------------------------------------------------------------


def _one_of_each() -> dict[str, Any]:
    campaign = build_cart_rescue()
    profile = Profile.objects.create(user_id="u-42", email="ada@example.com", locale="en")
    PushToken.objects.create(profile=profile, token="token-abc")
    variant = campaign.variants.get(name="10% discount")
    intervention = Intervention.objects.create(
        campaign=campaign,
        variant=variant,
        profile=profile,
        user_id="u-42",
        trigger_event_id="e-1",
        trigger="prediction.cart_abandonment",
        channel="onsite",
    )
    event = TrackingEvent.objects.create(
        type="clicked",
        source="websocket",
        intervention=intervention,
        user_id="u-42",
        occurred_at=timezone.now(),
    )
    conversion = Conversion.objects.create(
        order_id="o-1",
        user_id="u-42",
        revenue=Decimal("129.90"),
        currency="EUR",
        occurred_at=timezone.now(),
        intervention=intervention,
        campaign=campaign,
        variant=variant,
    )
    return {
        "campaigns.campaign": campaign,
        "campaigns.template": Template.objects.get(name="Cart rescue: 10% pop-up"),
        "personalization.segment": segment_create(
            name="Gold", rules='attributes.tier == "gold"', actor_label="t"
        ),
        "personalization.profile": profile,
        "interventions.intervention": intervention,
        "campaigns.auditentry": AuditEntry.objects.first(),
        "tracking.trackingevent": event,
        "tracking.conversion": conversion,
    }


MANAGED = ("campaigns.campaign", "campaigns.template", "personalization.segment")
VIEWED = (
    "personalization.profile",
    "interventions.intervention",
    "campaigns.auditentry",
    "tracking.trackingevent",
    "tracking.conversion",
)


def _url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:{model.replace('.', '_')}_{view}", args=args)


def test_it_renders_every_list_add_and_change_page_for_a_marketer(marketer_client):
    # given
    objects = _one_of_each()

    # when / then
    for model in (*MANAGED, *VIEWED):
        assert marketer_client.get(_url(model, "changelist")).status_code == 200, model
        assert marketer_client.get(_url(model, "change", objects[model].pk)).status_code == 200, model
    for model in MANAGED:
        assert marketer_client.get(_url(model, "add")).status_code == 200, model
    for model in VIEWED:
        assert marketer_client.get(_url(model, "add")).status_code == 403, model


def test_it_shows_the_dashboard_with_live_numbers(marketer_client):
    # given
    campaign = build_cart_rescue()
    campaign_activate(campaign=campaign, actor_label="t")

    # when
    response = marketer_client.get(reverse("admin:index"))

    # then
    assert response.status_code == 200
    numbers = {n.label: n.value for n in response.context["dashboard_numbers"]}
    assert numbers["Active campaigns"] == 1
    assert numbers["Interventions today"] == 0
    assert "Intervention Engine" in response.content.decode()
    # each number links to its list, filtered the same way (the admin redirects to ?e=1 when it cannot)
    for number in response.context["dashboard_numbers"]:
        listed = marketer_client.get(number.url)
        assert listed.status_code == 200, number.url
    active = marketer_client.get(response.context["dashboard_numbers"][0].url)
    assert [c.name for c in active.context["cl"].result_list] == ["Cart rescue"]


def test_it_keeps_marketers_out_of_api_keys_users_groups_and_beat(marketer_client):
    for path in (
        "/admin/api/apikey/",
        "/admin/auth/user/",
        "/admin/auth/group/",
        "/admin/django_celery_beat/periodictask/",
    ):
        assert marketer_client.get(path).status_code == 403, path


def test_it_lists_the_outbox_for_a_superuser_with_a_published_filter(client):
    # given
    admin_user = User.objects.create_superuser("root", "root@example.com", "a-long-test-password")
    client.force_login(admin_user)
    OutboxMessage.objects.create(topic="intervention-events", key="u-1", payload={"a": 1})
    OutboxMessage.objects.create(
        topic="intervention-events", key="u-2", payload={"a": 2}, published_at=timezone.now()
    )

    # when
    waiting = client.get(reverse("admin:messaging_outboxmessage_changelist") + "?published=no")

    # then
    assert waiting.status_code == 200
    assert [m.key for m in waiting.context["cl"].result_list] == ["u-1"]


def test_it_lists_campaigns_without_a_query_per_row(marketer_client, django_assert_max_num_queries):
    # given
    for number in range(4):
        build_cart_rescue(name=f"Campaign {number}")
    marketer_client.get(reverse("admin:campaigns_campaign_changelist"))  # warm the session and caches

    # when / then: the same few queries whatever the number of rows
    with django_assert_max_num_queries(12):
        response = marketer_client.get(reverse("admin:campaigns_campaign_changelist"))
    assert response.status_code == 200
    assert "ie-badge--draft" in response.content.decode()


# --- Templates and rules are validated on save ----------------------------------------------------------


def _template_post(**localization: str) -> dict[str, str]:
    data = {
        "name": "Broken pop-up",
        "channel": "onsite",
        "onsite_kind": "modal",
        "default_locale": "en",
        "description": "",
        "localizations-TOTAL_FORMS": "1",
        "localizations-INITIAL_FORMS": "0",
        "localizations-MIN_NUM_FORMS": "1",
        "localizations-MAX_NUM_FORMS": "1000",
    }
    fields = {"locale": "en", "subject": "Hello", "body_text": "Hi", **localization}
    for name in ("locale", "subject", "body_text", "body_html", "cta_label", "cta_url", "image_url"):
        data[f"localizations-0-{name}"] = fields.get(name, "")
    data["localizations-0-discount_code"] = fields.get("discount_code", "")
    return data


def test_it_refuses_a_template_that_cannot_render_naming_the_field_and_line(marketer_client):
    # when
    response = marketer_client.post(
        reverse("admin:campaigns_template_add"),
        _template_post(body_text="Hello {{ profile.first_name }},\nyour cart: {{ cart.total | }}"),
    )

    # then
    assert response.status_code == 200
    assert not Template.objects.filter(name="Broken pop-up").exists()
    page = response.content.decode()
    assert "body_text, line 2" in page


def test_it_refuses_a_template_reaching_outside_its_sandbox(marketer_client):
    # when
    response = marketer_client.post(
        reverse("admin:campaigns_template_add"), _template_post(subject="{{ settings.SECRET_KEY }}")
    )

    # then
    assert response.status_code == 200
    assert not Template.objects.filter(name="Broken pop-up").exists()
    assert "subject" in str(response.context["inline_admin_formsets"][0].formset.errors)


def test_it_saves_a_valid_template_through_the_service_with_an_audit_entry(marketer_client, marketer):
    # when
    response = marketer_client.post(
        reverse("admin:campaigns_template_add"), _template_post(subject="Hi {{ profile.first_name }}")
    )

    # then
    assert response.status_code == 302
    template = Template.objects.get(name="Broken pop-up")
    assert template.localizations.get().subject == "Hi {{ profile.first_name }}"
    entry = AuditEntry.objects.get(object_id=str(template.pk), action="template.created")
    assert entry.actor == marketer
    assert entry.actor_label == "mia"


def test_it_refuses_an_invalid_segment_rule_on_the_field(marketer_client):
    # when
    response = marketer_client.post(
        reverse("admin:personalization_segment_add"),
        {"name": "Broken", "description": "", "rules": "cart.total >= "},
    )

    # then
    assert response.status_code == 200
    assert not Segment.objects.filter(name="Broken").exists()
    assert response.context["adminform"].form.errors["rules"]


def test_it_refuses_invalid_campaign_conditions_on_the_field(marketer_client):
    # given
    campaign = build_cart_rescue()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = form_data(marketer_client.get(url), "campaign_form")
    data["conditions"] = ["score >= = 0.7"]

    # when
    response = marketer_client.post(url, data)

    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["conditions"]
    campaign.refresh_from_db()
    assert campaign.conditions == "score >= 0.7"


# --- Saving campaigns: through the services, audited ----------------------------------------------------


def test_it_records_field_level_changes_when_a_marketer_saves_a_campaign(marketer_client, marketer):
    # given
    campaign = build_cart_rescue()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = form_data(marketer_client.get(url), "campaign_form")
    data["priority"] = ["7"]
    data["variants-0-weight"] = ["60"]

    # when
    response = marketer_client.post(url, data)

    # then
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert campaign.priority == 7
    entry = AuditEntry.objects.filter(object_id=str(campaign.pk), action="campaign.updated").get()
    assert entry.actor == marketer
    assert entry.changes["priority"] == [0, 7]
    assert "variants" in entry.changes


def test_it_shows_the_services_refusal_when_an_active_campaign_would_stop_being_runnable(marketer_client):
    # given: an active campaign sending SMS, then a variant's SMS template removed in the form
    campaign = build_cart_rescue()
    campaign_activate(campaign=campaign, actor_label="t")
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = form_data(marketer_client.get(url), "campaign_form")
    data["variants-0-sms_template"] = [""]
    data["priority"] = ["9"]

    # when
    response = marketer_client.post(url, data)

    # then: the same form again, with the reason, and nothing saved
    assert response.status_code == 200
    assert "cannot run yet" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.priority == 0
    assert campaign.variants.get(name="10% discount").sms_template is not None
    assert not AuditEntry.objects.filter(object_id=str(campaign.pk), action="campaign.updated").exists()


def test_it_creates_a_campaign_with_variants_from_the_add_page(marketer_client):
    # given
    source = build_cart_rescue()
    data = form_data(
        marketer_client.get(reverse("admin:campaigns_campaign_change", args=[source.pk])), "campaign_form"
    )
    data["name"] = ["Cart rescue, winter"]
    for key in [k for k in data if k.startswith("variants-") and k.endswith(("-id", "-campaign"))]:
        data[key] = [""]
    data["variants-INITIAL_FORMS"] = ["0"]

    # when
    response = marketer_client.post(reverse("admin:campaigns_campaign_add"), data)

    # then
    assert response.status_code == 302
    created = Campaign.objects.get(name="Cart rescue, winter")
    assert created.status == "draft"
    assert sorted(created.variants.values_list("name", flat=True)) == [
        "10% discount",
        "Control",
        "Free shipping",
    ]
    assert AuditEntry.objects.filter(object_id=str(created.pk), action="campaign.created").exists()


# --- Status actions ---------------------------------------------------------------------------------------


def _status(client, campaign: Campaign, action: str):
    return client.post(reverse("admin:campaigns_campaign_status", args=[campaign.pk, action]), follow=True)


def test_it_refuses_to_pause_a_draft_and_says_why(marketer_client):
    # given
    campaign = build_cart_rescue()

    # when
    response = _status(marketer_client, campaign, "pause")

    # then
    campaign.refresh_from_db()
    assert campaign.status == "draft"
    assert any("cannot become paused" in m for m in messages_of(response))


def test_it_activates_pauses_completes_and_archives_through_the_buttons(marketer_client):
    # given
    campaign = build_cart_rescue()

    # when / then
    for action, status in (("activate", "active"), ("pause", "paused"), ("complete", "completed")):
        response = _status(marketer_client, campaign, action)
        campaign.refresh_from_db()
        assert campaign.status == status, messages_of(response)
        assert any(f"is now {status}" in m for m in messages_of(response))
    # a completed campaign is read-only, yet can still be archived
    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert page.context["has_change_permission"] is False
    _status(marketer_client, campaign, "archive")
    campaign.refresh_from_db()
    assert campaign.status == "archived"
    assert AuditEntry.objects.filter(object_id=str(campaign.pk), action="campaign.archived").exists()


def test_it_refuses_to_archive_an_active_campaign_from_the_list_action(marketer_client):
    # given
    active = build_cart_rescue()
    campaign_activate(campaign=active, actor_label="t")
    draft = build_cart_rescue(name="Other")

    # when
    response = marketer_client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "archive_selected", "_selected_action": [active.pk, draft.pk]},
        follow=True,
    )

    # then: the draft is archived, the active one refused with the reason
    active.refresh_from_db()
    draft.refresh_from_db()
    assert (active.status, draft.status) == ("active", "archived")
    texts = messages_of(response)
    assert any("“Cart rescue”: a active campaign cannot become archived" in t for t in texts), texts


def test_it_refuses_to_activate_a_campaign_that_cannot_run(marketer_client):
    # given: a triggered campaign with no variant
    campaign = campaign_create(
        data={"name": "Empty", "trigger": "cart_abandoned", "channels": ["email"]},
        variants=[],
        actor_label="t",
    )

    # when
    response = _status(marketer_client, campaign, "activate")

    # then
    campaign.refresh_from_db()
    assert campaign.status == "draft"
    assert any("cannot run yet" in m for m in messages_of(response))


def test_it_duplicates_a_campaign_as_a_draft_copy(marketer_client):
    # given
    campaign = build_cart_rescue()
    campaign_activate(campaign=campaign, actor_label="t")

    # when
    response = marketer_client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "duplicate_selected", "_selected_action": [campaign.pk]},
        follow=True,
    )

    # then
    copy = Campaign.objects.get(name="Cart rescue (copy)")
    assert copy.status == "draft"
    assert copy.variants.count() == 3
    assert any("duplicated" in m for m in messages_of(response))


def test_it_does_not_let_a_viewer_change_status(client):
    # given: staff without campaign permissions
    user = User.objects.create_user("viewer", "v@example.com", "a-long-test-password", is_staff=True)
    client.force_login(user)
    campaign = build_cart_rescue()

    # when
    response = client.post(reverse("admin:campaigns_campaign_status", args=[campaign.pk, "activate"]))

    # then
    assert response.status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == "draft"


# --- The campaign page: preview, segment size, audit trail ---------------------------------------------


def test_it_previews_every_variant_per_channel_in_the_chosen_locale(marketer_client):
    # given
    campaign = build_cart_rescue()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])

    # when
    english = marketer_client.get(url).content.decode()
    french = marketer_client.get(url + "?locale=fr").content.decode()

    # then
    assert "Ada, your cart is waiting" in english
    assert "Use my 10% off" in english
    assert "SAVE10" in english
    assert "Free shipping on your cart today" in english
    assert 'sandbox=""' in english
    assert "srcdoc=" in english
    assert "Your cart misses you. Code SAVE10." in english
    assert "Control: the shopper is counted but sees nothing." in english
    assert "Camille, votre panier vous attend" in french
    assert "J&#x27;en profite" in french


def test_it_shows_segment_size_and_audit_trail_on_the_campaign_page(marketer_client):
    # given
    campaign = build_cart_rescue()
    segment = segment_create(name="Gold", rules='attributes.tier == "gold"', actor_label="t")
    Campaign.objects.filter(pk=campaign.pk).update(segment=segment)
    Profile.objects.create(user_id="u-1", attributes={"tier": "gold"})
    Profile.objects.create(user_id="u-2", attributes={"tier": "silver"})

    # when
    response = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    # then
    assert response.context["segment_size"] == "1"
    assert [row["entry"].action for row in response.context["audit_rows"]] == ["campaign.created"]


def test_it_estimates_segment_sizes_from_the_list_action(marketer_client):
    # given
    segment = segment_create(name="Gold", rules='attributes.tier == "gold"', actor_label="t")
    Profile.objects.create(user_id="u-1", attributes={"tier": "gold"})

    # when
    response = marketer_client.post(
        reverse("admin:personalization_segment_changelist"),
        {"action": "estimate_now", "_selected_action": [segment.pk]},
        follow=True,
    )

    # then
    segment.refresh_from_db()
    assert segment.estimated_size == 1
    assert any("about 1 shoppers" in m for m in messages_of(response))


@pytest.mark.parametrize(
    "rules", ["cart.total > " + "9" * 3980, 'email == "\\ud800"', 'attributes.tier == "a\\x00b"']
)
def test_it_shows_a_stored_rule_it_cannot_run_as_an_error_never_a_500(marketer_client, rules):
    # given a segment stored before today's rule validation, used by a campaign
    segment = Segment.objects.create(name="Old", rules=rules)
    campaign = build_cart_rescue()
    Campaign.objects.filter(pk=campaign.pk).update(segment=segment)
    Profile.objects.create(user_id="u-1", email="a@example.com", attributes={"tier": "gold"})
    marketer_client.raise_request_exception = False

    # when the pages that count its members are opened, and its size is estimated from the list
    segment_page = marketer_client.get(reverse("admin:personalization_segment_change", args=[segment.pk]))
    campaign_page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    estimated = marketer_client.post(
        reverse("admin:personalization_segment_changelist"),
        {"action": "estimate_now", "_selected_action": [segment.pk]},
        follow=True,
    )

    # then each page shows the rule's error in place of a count
    assert segment_page.status_code == 200
    assert "numbers are limited" in segment_page.content.decode() or "strings may not" in (
        segment_page.content.decode()
    )
    assert campaign_page.status_code == 200
    assert campaign_page.context["segment_size"].startswith("line 1, col ")
    assert estimated.status_code == 200
    assert any(m.startswith("Old: line 1, col ") for m in messages_of(estimated))


def test_it_audits_a_campaign_deleted_from_the_admin(marketer_client, marketer):
    # given
    campaign = build_cart_rescue()

    # when
    response = marketer_client.post(
        reverse("admin:campaigns_campaign_delete", args=[campaign.pk]), {"post": "yes"}
    )

    # then
    assert response.status_code == 302
    assert not Campaign.objects.filter(pk=campaign.pk).exists()
    entry = AuditEntry.objects.get(object_id=str(campaign.pk), action="campaign.deleted")
    assert (entry.actor, entry.object_repr) == (marketer, "Cart rescue")


def test_it_keeps_a_completed_campaign_read_only(marketer_client):
    # given
    campaign = build_cart_rescue()
    for action in ("activate", "complete"):
        _status(marketer_client, campaign, action)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])

    # when
    response = marketer_client.post(url, {"name": "Renamed"})

    # then
    assert response.status_code == 403
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status) == ("Cart rescue", "completed")


def test_it_shows_how_many_and_which_shoppers_a_segment_holds(marketer_client):
    # given
    segment = segment_create(name="Gold", rules='attributes.tier == "gold"', actor_label="t")
    Profile.objects.create(user_id="u-gold", attributes={"tier": "gold"})
    Profile.objects.create(user_id="u-silver", attributes={"tier": "silver"})

    # when
    url = reverse("admin:personalization_segment_change", args=[segment.pk])
    page = marketer_client.get(url).content.decode()

    # then
    assert "u-gold" in page
    assert "u-silver" not in page
    assert "shoppers in the segment now" in page.lower()


# --- The pickers: channels in order, exit events from the known types --------------------------------------


def _campaign_form(client, campaign: Campaign) -> tuple[str, dict[str, list[str]]]:
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    return url, form_data(client.get(url), "campaign_form")


def test_it_offers_every_channel_in_the_campaigns_order_and_saves_it_unchanged(marketer_client):
    # given: the demo campaign, its channels set to SMS then on-site
    campaign = build_cart_rescue()
    # ... and exit events in an order of their own, as the API may have stored them
    Campaign.objects.filter(pk=campaign.pk).update(
        channels=["sms", "onsite"], exit_events=["cart_abandoned", "checkout_completed"]
    )
    url, data = _campaign_form(marketer_client, campaign)

    # then the picker ticks the chosen channels, in their order, and lists the others after them
    assert data["channels"] == ["sms", "onsite"]
    assert [data[f"channels_place_{c}"] for c in ("sms", "onsite", "email", "push")] == [
        ["1"],
        ["2"],
        ["3"],
        ["4"],
    ]
    assert data["exit_events"] == ["checkout_completed", "cart_abandoned"]

    # when the form goes back as it came
    response = marketer_client.post(url, data)

    # then the lists are stored as they were: no change recorded for them
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.channels, campaign.exit_events) == (
        ["sms", "onsite"],
        ["cart_abandoned", "checkout_completed"],
    )
    entry = AuditEntry.objects.filter(object_id=str(campaign.pk), action="campaign.updated").first()
    assert entry is None or not {"channels", "exit_events"} & set(entry.changes)


def test_it_stores_the_ticked_channels_in_the_order_of_their_places(marketer_client):
    # given
    campaign = build_cart_rescue()
    url, data = _campaign_form(marketer_client, campaign)

    # when the marketer keeps e-mail and push, push first, and exits on a cart abandoned or an order
    data["channels"] = ["email", "push"]
    data["channels_place_email"], data["channels_place_push"] = ["5"], ["2"]
    data["exit_events"] = ["cart_abandoned", "checkout_completed"]
    response = marketer_client.post(url, data)

    # then the same JSON lists the API reads and writes
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.channels == ["push", "email"]
    assert campaign.exit_events == ["checkout_completed", "cart_abandoned"]
    assert marketer_client.get(url).status_code == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"channels": ["email", "push"], "channels_place_push": ["1"], "channels_place_email": ["1"]},
            "Email and Push share place 1: give each chosen channel its own place.",
        ),
        (
            {"channels": ["email"], "channels_place_email": ["first"]},
            "The place of Email must be a whole number, not &#x27;first&#x27;.",
        ),
        ({"channels": ["email", "fax"]}, "Unknown channel fax: use onsite, email, sms, push."),
        ({"channels": []}, "Choose at least one channel, in the order to try them."),
        ({"exit_events": ["order_refunded"]}, "order_refunded is not an event type the engine receives"),
    ],
)
def test_it_refuses_a_picker_value_it_cannot_store_on_its_field_with_the_reason(
    marketer_client, change, reason
):
    # given
    campaign = build_cart_rescue()
    url, data = _campaign_form(marketer_client, campaign)
    data.update(change)
    data["priority"] = ["9"]

    # when
    response = marketer_client.post(url, data)

    # then the form comes back with the reason on the field, and nothing is saved
    assert response.status_code == 200
    field = next(iter(change)).split("_place_")[0]
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert reason in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.priority == 0


def test_it_shows_what_was_sent_again_when_the_form_is_refused(marketer_client):
    # given: push placed before e-mail, and the name left empty
    campaign = build_cart_rescue()
    url, data = _campaign_form(marketer_client, campaign)
    data["channels"] = ["email", "push"]
    data["channels_place_email"], data["channels_place_push"] = ["2"], ["1"]
    data["name"] = [""]

    # when
    response = marketer_client.post(url, data)

    # then the picker shows push, then e-mail, ticked, as sent
    assert response.status_code == 200
    sent_again = form_data(response, "campaign_form")
    assert sent_again["channels"] == ["push", "email"]


# --- The schedule editor: next runs of what is typed, before saving ----------------------------------------


def _preview(client, **fields: str):
    return client.get(reverse("admin:campaigns_campaign_schedule_preview"), fields)


def test_it_previews_the_next_runs_of_an_unsaved_schedule_in_both_zones(marketer_client):
    # given a segment of gold shoppers, two in New York
    segment = segment_create(name="Gold NY", rules='attributes.tier == "gold"', actor_label="t")
    for user_id in ("u-ny-1", "u-ny-2"):
        Profile.objects.create(user_id=user_id, timezone="America/New_York", attributes={"tier": "gold"})

    # when a marketer types a daily 10:00 Paris schedule, sent at 10:00 on each shopper's clock
    response = _preview(
        marketer_client,
        kind="scheduled",
        cron="0 10 * * *",
        schedule_timezone="Europe/Paris",
        send_local_time="10:00",
        segment=str(segment.pk),
    )

    # then five runs, each starting 10:00 in Paris and reaching New York at 10:00 there
    assert response.status_code == 200
    answer = response.json()
    assert (answer["scheduled"], answer["zone"], answer["shopper_zones"]) == (
        True,
        "Europe/Paris",
        ["America/New_York"],
    )
    assert answer["send_local_time"] == "10:00"
    assert len(answer["runs"]) == 5
    for run in answer["runs"]:
        assert "10:00" in run["start_text"]
        (reach,) = run["reaches"]
        assert reach["zone"] == "America/New_York"
        assert "10:00" in reach["text"]
        assert datetime.fromisoformat(reach["at"]) > datetime.fromisoformat(run["start"])


def test_it_previews_a_one_off_time_typed_in_the_admins_date_and_time_boxes(marketer_client):
    # given a time tomorrow, as the admin's split date and time inputs send it (the admin's zone: UTC)
    tomorrow = timezone.now() + timedelta(days=1)

    # when
    response = _preview(
        marketer_client,
        kind="scheduled",
        send_at_0=tomorrow.strftime("%Y-%m-%d"),
        send_at_1="09:30:00",
        schedule_timezone="Asia/Tokyo",
    )

    # then one run, shown in Tokyo time (UTC+9)
    assert response.status_code == 200
    (run,) = response.json()["runs"]
    assert run["start"] == f"{tomorrow.strftime('%Y-%m-%d')}T18:30:00+09:00"
    assert run["reaches"] == []


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"cron": "0 25 * * *"}, "cron", "not a cron expression"),
        ({"cron": "0 10 * *"}, "cron", "five fields"),
        ({"cron": "0 10 * * *", "schedule_timezone": "Mars/Olympus"}, "schedule_timezone", "not a known"),
        ({"send_at_0": "2020-01-01", "send_at_1": "10:00"}, "send_at", "has passed"),
        ({"send_at_0": "2020-13-45", "send_at_1": "10:00"}, "send_at", "Enter a valid date"),
        ({"send_local_time": "25:99", "cron": "0 10 * * *"}, "send_local_time", "Enter a valid time"),
        ({}, "send_at", "set a one-off time, or a cron expression"),
        ({"cron": "0 10 * * *", "segment": "999999"}, "segment", "Select a valid choice"),
    ],
)
def test_it_answers_a_schedule_that_cannot_run_with_the_field_and_reason(
    marketer_client, fields, field, reason
):
    # when
    response = _preview(marketer_client, kind="scheduled", **fields)

    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]
    assert reason in " ".join(error["details"][field])
    assert error["message"].startswith(f"{field}: ")


def test_it_answers_that_a_triggered_campaign_has_no_runs(marketer_client):
    response = _preview(marketer_client, kind="triggered", cron="nonsense")

    assert response.status_code == 200
    assert response.json() == {"scheduled": False, "zone": "", "shopper_zones": [], "runs": [], "problem": ""}


def test_it_shows_the_starts_on_the_browsers_clock_when_it_is_another_zone(marketer_client):
    # given a Monday 09:00 Paris schedule
    schedule = {"kind": "scheduled", "cron": "0 9 * * 1", "schedule_timezone": "Europe/Paris"}

    # when the page asks from a browser in Tokyo, from one in Paris, and from one that names no real zone
    tokyo = _preview(marketer_client, **schedule, viewer_zone="Asia/Tokyo").json()
    paris = _preview(marketer_client, **schedule, viewer_zone="Europe/Paris").json()
    unknown = _preview(marketer_client, **schedule, viewer_zone="Nowhere/Else").json()

    # then only Tokyo gets the starts on its own clock: Monday 09:00 in Paris is 17:00 in Tokyo (16:00 in
    # Paris's summer)
    assert tokyo["viewer_zone"] == "Asia/Tokyo"
    assert len(tokyo["runs"]) == 5
    for run in tokyo["runs"]:
        in_tokyo = ", 17:00 JST" if run["start_text"].endswith("CET") else ", 16:00 JST"
        assert run["start_text"].endswith((", 09:00 CET", ", 09:00 CEST"))
        assert run["start_viewer_text"].endswith(in_tokyo)
    assert (paris["viewer_zone"], unknown["viewer_zone"]) == ("", "")
    assert {run["start_viewer_text"] for run in paris["runs"] + unknown["runs"]} == {""}


def test_it_draws_the_next_runs_panel_on_the_add_page_hidden_until_a_schedule_is_typed(marketer_client):
    page = marketer_client.get(reverse("admin:campaigns_campaign_add")).content.decode()

    assert 'id="ie-schedule"' in page
    assert reverse("admin:campaigns_campaign_schedule_preview") in page
    assert "admin-ext/campaign-form.js" in page
