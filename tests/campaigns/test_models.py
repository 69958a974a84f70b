from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from campaigns.models import Campaign, Template, Variant
from interventions.models import Intervention
from personalization.models import Profile
from tests import fixtures as f

pytestmark = pytest.mark.django_db


def test_it_stores_one_intervention_per_campaign_and_trigger_event() -> None:
    # given an intervention decided for an event
    campaign = f.campaign()
    profile = Profile.objects.create(user_id="u-1")
    fields = {"campaign": campaign, "profile": profile, "user_id": "u-1", "trigger": "prediction.x"}
    Intervention.objects.create(trigger_event_id="evt-1", **fields)

    # when the same event is decided again for the same campaign, the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        Intervention.objects.create(trigger_event_id="evt-1", **fields)

    # then another event, or another campaign, is fine
    Intervention.objects.create(trigger_event_id="evt-2", **fields)
    Intervention.objects.create(trigger_event_id="evt-1", **{**fields, "campaign": f.campaign()})
    assert Intervention.objects.count() == 3


def test_it_refuses_a_second_control_variant_and_out_of_range_weights() -> None:
    campaign = f.campaign()  # has a control already

    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.create(campaign=campaign, name="Control 2", is_control=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.create(campaign=campaign, name="Heavy", weight=10001)
    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.create(campaign=campaign, name="A")  # names are unique per campaign


@pytest.mark.parametrize("holdout", ["-1", "100.01"])
def test_it_refuses_a_holdout_outside_0_to_100(holdout) -> None:
    with pytest.raises(IntegrityError):
        Campaign.objects.create(name="c", holdout_percent=holdout)


def test_it_refuses_an_active_triggered_campaign_without_trigger() -> None:
    with pytest.raises(IntegrityError):
        Campaign.objects.create(name="c", kind="triggered", trigger="", status="active")


def test_it_refuses_an_onsite_template_without_a_kind_and_a_kind_on_other_channels() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Template.objects.create(name="t1", channel="onsite", onsite_kind="")
    with pytest.raises(IntegrityError), transaction.atomic():
        Template.objects.create(name="t2", channel="email", onsite_kind="modal")
