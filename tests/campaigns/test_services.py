from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import selectors, services
from campaigns.models import AuditEntry, Campaign, Template
from core.errors import ApplicationError, ConflictError, NotFoundError
from interventions.models import Intervention
from personalization import selectors as personalization_selectors
from personalization.models import Profile
from personalization.rendering import TemplateRenderError, sample_context
from personalization.rules import RuleError
from tests import fixtures as f

pytestmark = pytest.mark.django_db


# --- Audit ---------------------------------------------------------------------------------------------


def test_it_diffs_only_what_changed_in_json_form() -> None:
    before = {"name": "a", "holdout_percent": Decimal("10.00"), "channels": ["onsite"], "same": 1}
    after = {"name": "b", "holdout_percent": Decimal("10.00"), "channels": ["onsite", "email"], "same": 1}

    assert services.audit_diff(before, after) == {
        "channels": [["onsite"], ["onsite", "email"]],
        "name": ["a", "b"],
    }


# --- Templates -----------------------------------------------------------------------------------------


def test_it_creates_a_template_with_localizations_and_audits_who_did_it() -> None:
    # given a marketer
    ada = User.objects.create_user("ada")

    # when she creates an e-mail template in two locales
    template = services.template_create(
        data={"name": "Reminder", "channel": "email"},
        localizations=[
            {"locale": "en", "subject": "Hi {{ first_name }}", "body_text": "Your cart"},
            {"locale": "fr", "subject": "Bonjour", "body_html": "<p>{{ cart.total|money }}</p>"},
        ],
        actor_label="ada",
        actor=ada,
    )

    # then both localizations are stored and the audit entry names her and the content
    assert sorted(template.localizations.values_list("locale", flat=True)) == ["en", "fr"]
    entry = AuditEntry.objects.get(action="template.created")
    assert (entry.actor, entry.actor_label, entry.object_id) == (ada, "ada", str(template.pk))
    assert entry.changes["name"] == [None, "Reminder"]
    assert entry.changes["localizations"][1]["fr"]["subject"] == "Bonjour"


@pytest.mark.parametrize(
    ("channel", "localization", "field", "message"),
    [
        (
            "email",
            {"locale": "en", "subject": "Hi", "body_text": "{{ cart.total }"},
            "body_text",
            "unexpected",
        ),
        ("sms", {"locale": "en", "body_text": "{{ settings.SECRET_KEY }}"}, "body_text", "unknown variable"),
        ("push", {"locale": "en", "body_text": "no title"}, "subject", "required for push"),
        ("sms", {"locale": "en", "body_text": "x", "body_html": "<p>x</p>"}, "body_html", "only email"),
        ("onsite", {"locale": "", "subject": "x", "body_text": "y"}, "locale", "needs a locale"),
    ],
)
def test_it_refuses_a_template_that_cannot_render(channel, localization, field, message) -> None:
    with pytest.raises(TemplateRenderError) as refused:
        services.template_create(
            data={"name": "Bad", "channel": channel, "onsite_kind": "modal" if channel == "onsite" else ""},
            localizations=[localization],
            actor_label="test",
        )

    assert refused.value.field == field
    assert message in refused.value.message
    assert not Template.objects.exists()
    assert not AuditEntry.objects.exists()


def test_it_names_the_locale_of_a_broken_localization() -> None:
    with pytest.raises(TemplateRenderError) as refused:
        services.template_validate(
            template=Template(name="t", channel="sms"),
            localizations=[{"locale": "en", "body_text": "ok"}, {"locale": "fr", "body_text": "\n{{ x }}"}],
        )

    assert refused.value.message == (
        "body_text, line 2: unknown variable 'x' (available: profile, cart, event, campaign, variant, "
        "discount_code, links, first_name) (locale fr)"
    )
    assert refused.value.line == 2


@pytest.mark.parametrize(
    ("wanted", "chosen"),
    [("fr-FR", "fr-FR"), ("fr-CA", "fr"), ("fr_ca", "fr"), ("de-DE", "en"), ("", "en"), ("FR-fr", "fr-FR")],
)
def test_it_falls_back_from_region_to_language_to_the_default_locale(wanted, chosen) -> None:
    template = f.template("sms", locales=("de-AT", "en", "fr", "fr-FR"))
    Template.objects.filter(pk=template.pk).update(default_locale="en")

    assert services.template_localization_for(template=template, locale=wanted).locale == chosen


def test_it_falls_back_to_the_first_localization_and_fails_without_any() -> None:
    template = f.template("sms", locales=("it", "es"))
    template.default_locale = "en"

    assert services.template_localization_for(template=template, locale="de").locale == "es"
    template.localizations.all().delete()
    with pytest.raises(NotFoundError):
        services.template_localization_for(template=template, locale="de")


def test_it_renders_a_template_in_the_shoppers_locale_with_its_discount_code() -> None:
    # given an on-site template whose code is fixed, in English and French
    template = services.template_create(
        data={"name": "Rescue", "channel": "onsite", "onsite_kind": "banner"},
        localizations=[
            {"locale": "en", "subject": "Hi {{ first_name }}", "body_text": "Use {{ discount_code }}"},
            {"locale": "fr", "subject": "Salut {{ first_name }}", "body_text": "Code {{ discount_code }}"},
        ],
        actor_label="test",
    )
    template.localizations.update(discount_code="RESCUE10")

    # when it renders for a French shopper
    rendered = services.template_render(
        template=template, locale="fr-FR", context=sample_context(locale="fr")
    )

    # then the French content, the template's code and the on-site kind come back
    assert rendered == {
        "subject": "Salut Camille",
        "body_text": "Code RESCUE10",
        "body_html": "",
        "cta_label": "",
        "cta_url": "",
        "image_url": "",
        "discount_code": "RESCUE10",
        "kind": "banner",
    }


def test_it_uses_a_per_shopper_code_from_the_context_when_the_template_has_none() -> None:
    template = f.template("sms")
    template.localizations.update(body_text="{{ discount_code }}")

    rendered = services.template_render(template=template, locale="en", context={"discount_code": "U-42-XYZ"})

    assert rendered["body_text"] == "U-42-XYZ"
    assert rendered["discount_code"] == "U-42-XYZ"
    assert "kind" not in rendered


def test_it_updates_a_template_replacing_localizations_by_locale_and_tells_campaigns(
    django_capture_on_commit_callbacks,
) -> None:
    # given a campaign using a template
    campaign = f.campaign()
    template = campaign.variants.get(name="A").onsite_template
    assert template is not None
    before = services.campaigns_version()

    # when the template's localizations are replaced
    with django_capture_on_commit_callbacks(execute=True):
        updated = services.template_update(
            template=template,
            data={"description": "v2"},
            localizations=[{"locale": "fr", "subject": "Salut", "body_text": "Texte"}],
            actor_label="test",
        )

    # then only the new locale remains, the change is audited, and campaigns' caches are told
    assert list(updated.localizations.values_list("locale", flat=True)) == ["fr"]
    entry = AuditEntry.objects.filter(action="template.updated").get()
    assert entry.changes["description"] == ["", "v2"]
    assert "en" in entry.changes["localizations"][0]
    assert services.campaigns_version() == before + 1


def test_it_refuses_changing_the_channel_of_a_template_in_use() -> None:
    campaign = f.campaign()
    template = campaign.variants.get(name="A").onsite_template
    assert template is not None

    with pytest.raises(ConflictError, match="channel cannot change"):
        services.template_update(template=template, data={"channel": "sms"}, actor_label="test")


def test_it_refuses_a_duplicate_template_name_as_a_conflict() -> None:
    f.template("sms", name="Same")

    with pytest.raises(ConflictError, match="already exists"):
        f.template("sms", name="Same")


# --- Segments ------------------------------------------------------------------------------------------


def test_it_creates_and_updates_a_segment_with_valid_rules_only() -> None:
    segment = services.segment_create(name="Gold", rules='attributes.tier == "gold"', actor_label="test")

    with pytest.raises(RuleError, match="only known while an event is decided"):
        services.segment_update(segment=segment, rules="score > 0.5", actor_label="test")
    with pytest.raises(RuleError, match="line 1, col 1"):
        services.segment_create(name="Bad", rules="cart.total.__class__ == 1", actor_label="test")

    services.segment_update(segment=segment, rules="cart.total >= 50", actor_label="test")
    segment.refresh_from_db()
    assert segment.rules == "cart.total >= 50"
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["segment.created", "segment.updated"]


def test_it_estimates_a_segment_size_and_remembers_it() -> None:
    # given shoppers, one of them erased
    Profile.objects.bulk_create(
        [
            Profile(user_id="gold-big", attributes={"tier": "gold"}, last_cart={"total": 80}),
            Profile(user_id="gold-small", attributes={"tier": "gold"}, last_cart={"total": 20}),
            Profile(user_id="silver", attributes={"tier": "silver"}, last_cart={"total": 80}),
            Profile(
                user_id="erased",
                attributes={"tier": "gold"},
                last_cart={"total": 99},
                erased_at=timezone.now(),
            ),
        ]
    )
    segment = services.segment_create(
        name="Gold big", rules='cart.total >= 50 and attributes.tier == "gold"', actor_label="test"
    )

    # when its size is estimated
    size = personalization_selectors.segment_estimate_size(segment=segment)

    # then only live members count and the figure is stored with its time
    assert size == 1
    segment.refresh_from_db()
    assert segment.estimated_size == 1
    assert segment.estimated_at is not None


# --- Campaigns -----------------------------------------------------------------------------------------


def test_it_creates_a_campaign_with_variants_and_refuses_bad_conditions() -> None:
    campaign = f.campaign(channels=("onsite", "email"), holdout_percent=Decimal("10"))

    assert list(campaign.variants.order_by("name").values_list("name", "is_control")) == [
        ("A", False),
        ("Control", True),
    ]
    entry = AuditEntry.objects.filter(action="campaign.created", object_id=str(campaign.pk)).get()
    assert entry.changes["channels"] == [None, ["onsite", "email"]]
    assert set(entry.changes["variants"][1]) == {"A", "Control"}

    with pytest.raises(RuleError, match="conditions: line 1, col 1: arithmetic is not allowed"):
        f.campaign(conditions="score >> 1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"channels": ["onsite", "fax"]}, "unknown channel"),
        ({"channels": ["onsite", "onsite"]}, "appears twice"),
        ({"holdout_percent": 101}, "between 0 and 100"),
        ({"exit_events": "checkout_completed"}, "exit_events"),
        ({"colour": "red"}, "unknown campaign field"),
        ({"trigger": "checkout"}, r"or prediction\.<model>"),
        ({"exit_events": ["paid"]}, "event types among"),
    ],
)
def test_it_refuses_an_invalid_campaign_shape(data, message) -> None:
    with pytest.raises(ApplicationError, match=message):
        f.campaign(**data)


def test_it_refuses_two_controls_and_a_template_of_the_wrong_channel() -> None:
    with pytest.raises(ApplicationError, match="at most one control"):
        f.campaign(variants=[{"name": "C1", "is_control": True}, {"name": "C2", "is_control": True}])
    with pytest.raises(ApplicationError, match="is for sms, not onsite"):
        f.campaign(variants=[{"name": "A", "onsite_template": f.template("sms")}])


def test_it_updates_variants_by_name_and_moves_the_control() -> None:
    # given a campaign with A and Control
    campaign = f.campaign()
    a_id = campaign.variants.get(name="A").pk
    onsite = f.template("onsite")

    # when the variants are replaced: A reweighted, B added as the new control, Control removed
    services.campaign_update(
        campaign=campaign,
        data={"priority": 5},
        variants=[
            {"name": "A", "weight": 3},
            {"name": "B", "weight": 1, "is_control": True, "onsite_template_id": onsite.pk},
        ],
        actor_label="test",
    )

    # then A kept its id, B is the only control, and the diff is audited
    rows = list(campaign.variants.order_by("name").values_list("name", "weight", "is_control", "pk"))
    assert [row[:3] for row in rows] == [("A", 3, False), ("B", 1, True)]
    assert rows[0][3] == a_id
    entry = AuditEntry.objects.filter(action="campaign.updated").get()
    assert entry.changes["priority"] == [0, 5]
    assert "Control" in entry.changes["variants"][0]
    assert "Control" not in entry.changes["variants"][1]


def test_it_keeps_an_active_campaign_runnable_and_completed_ones_read_only() -> None:
    campaign = f.campaign(status="active")

    # an active campaign may change its priority…
    services.campaign_update(campaign=campaign, data={"priority": 7}, actor_label="test")
    # …but not lose what it needs to run
    with pytest.raises(ConflictError, match="no template for email"):
        services.campaign_update(
            campaign=campaign, data={"channels": ["onsite", "email"]}, actor_label="test"
        )
    assert Campaign.objects.get(pk=campaign.pk).channels == ["onsite"]

    with pytest.raises(ConflictError, match="needs a trigger"):
        services.campaign_update(campaign=campaign, data={"trigger": ""}, actor_label="test")

    services.campaign_complete(campaign=campaign, actor_label="test")
    with pytest.raises(ConflictError, match="completed campaign cannot be edited"):
        services.campaign_update(campaign=campaign, data={"priority": 1}, actor_label="test")


def test_it_applies_a_status_given_with_an_update_through_the_transition_rules() -> None:
    campaign = f.campaign()

    campaign = services.campaign_update(campaign=campaign, data={"status": "active"}, actor_label="test")

    assert campaign.status == "active"
    with pytest.raises(ConflictError):
        services.campaign_update(campaign=campaign, data={"status": "draft"}, actor_label="test")


def test_it_refuses_removing_a_variant_that_has_interventions() -> None:
    campaign = f.campaign(status="active")
    variant = campaign.variants.get(name="A")
    profile = Profile.objects.create(user_id="u-1")
    Intervention.objects.create(
        campaign=campaign, variant=variant, profile=profile, user_id="u-1", trigger_event_id="e", trigger="t"
    )

    with pytest.raises(ConflictError, match="set its weight to 0"):
        services.campaign_update(
            campaign=campaign, data={}, variants=[{"name": "Control", "is_control": True}], actor_label="test"
        )


def test_it_duplicates_a_campaign_as_a_draft_with_its_variants() -> None:
    # given an active campaign
    campaign = f.campaign(status="active", priority=4, exit_events=["checkout_completed"])

    # when it is duplicated twice
    copy = services.campaign_duplicate(campaign=campaign, actor_label="ada")
    second = services.campaign_duplicate(campaign=campaign, actor_label="ada")

    # then the copies are drafts with the same settings, variants and templates
    assert (copy.name, copy.status, copy.priority) == (f"{campaign.name} (copy)", "draft", 4)
    assert second.name == f"{campaign.name} (copy 2)"
    assert copy.exit_events == ["checkout_completed"]

    def shape(c: Campaign) -> list[tuple[str, int, bool, int | None]]:
        return list(
            c.variants.order_by("name").values_list("name", "weight", "is_control", "onsite_template_id")
        )

    assert shape(copy) == shape(campaign)
    assert AuditEntry.objects.filter(action="campaign.duplicated", object_id=str(copy.pk)).exists()


# --- Selectors -----------------------------------------------------------------------------------------


def test_it_lists_active_in_date_triggered_campaigns_with_everything_loaded() -> None:
    # given campaigns active, paused, out of date and scheduled
    high = f.campaign(status="active", channels=("onsite", "email"), priority=10)
    low = f.campaign(status="active", priority=1)
    f.campaign(status="active", starts_at=timezone.now() + timedelta(days=1))
    services.campaign_pause(campaign=f.campaign(status="active"), actor_label="test")
    f.campaign()

    # when the decision path loads them, and walks every variant's templates and localizations
    with CaptureQueriesContext(connection) as queries:
        campaigns = selectors.campaigns_active_triggered()
        for campaign in campaigns:
            for variant in campaign.variants.all():
                for channel in campaign.channels:
                    template = variant.template_for(channel)
                    if template is not None:
                        services.template_localization_for(template=template, locale="fr")

    # then only the two runnable ones come, by priority, in a fixed number of queries
    assert [c.pk for c in campaigns] == [high.pk, low.pk]
    assert len(queries) <= 7
