from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from campaigns import services
from campaigns.models import AuditEntry, Campaign
from campaigns.services import ALLOWED_TRANSITIONS, CampaignTransitionError
from campaigns.signals import campaign_changed
from core.errors import NotFoundError
from tests import fixtures as f

pytestmark = pytest.mark.django_db

STATUSES = ["draft", "active", "paused", "completed", "archived"]
ALLOWED = {
    ("draft", "active"),
    ("active", "paused"),
    ("paused", "active"),
    ("active", "completed"),
    ("paused", "completed"),
    ("draft", "archived"),
    ("paused", "archived"),
    ("completed", "archived"),
}
# A shortest path of allowed transitions to reach each status from draft.
PATHS = {
    "draft": [],
    "active": ["active"],
    "paused": ["active", "paused"],
    "completed": ["active", "completed"],
    "archived": ["archived"],
}


def _campaign_in(status: str) -> Campaign:
    campaign = f.campaign()
    for step in PATHS[status]:
        campaign = services.campaign_transition(campaign=campaign, to_status=step, actor_label="test")
    return campaign


def test_it_documents_exactly_the_allowed_transitions() -> None:
    assert {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize(("from_status", "to_status"), [(a, b) for a in STATUSES for b in STATUSES if a != b])
def test_it_applies_allowed_transitions_and_refuses_the_others(from_status, to_status) -> None:
    # given a runnable campaign in from_status
    campaign = _campaign_in(from_status)

    if (from_status, to_status) in ALLOWED:
        # when an allowed transition is asked, then it happens and is audited
        changed = services.campaign_transition(campaign=campaign, to_status=to_status, actor_label="ada")
        assert changed.status == to_status
        entry = AuditEntry.objects.filter(object_id=str(campaign.pk)).order_by("-id").first()
        assert entry is not None
        assert (entry.action, entry.actor_label, entry.changes) == (
            f"campaign.{to_status}",
            "ada",
            {"status": [from_status, to_status]},
        )
    else:
        # when a refused one is asked, then a conflict explains what is possible
        with pytest.raises(CampaignTransitionError) as refused:
            services.campaign_transition(campaign=campaign, to_status=to_status, actor_label="ada")
        assert refused.value.status_code == 409
        assert f"a {from_status} campaign cannot become {to_status}" in refused.value.message
        campaign.refresh_from_db()
        assert campaign.status == from_status


@pytest.mark.parametrize(("from_status", "to_status"), [("draft", "completed"), ("archived", "active")])
def test_it_refuses_invalid_transitions_even_as_raw_sql(from_status, to_status) -> None:
    # given a campaign in from_status
    campaign = _campaign_in(from_status)

    # when code bypasses the services with an UPDATE, then PostgreSQL refuses it
    with pytest.raises(IntegrityError, match="cannot go from"), transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(status=to_status)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE campaigns_campaign SET status = %s WHERE id = %s", [to_status, campaign.pk])

    campaign.refresh_from_db()
    assert campaign.status == from_status


def test_it_lets_allowed_raw_updates_and_same_status_saves_through() -> None:
    campaign = _campaign_in("active")

    Campaign.objects.filter(pk=campaign.pk).update(status="paused")
    campaign.refresh_from_db()
    campaign.description = "edited"
    campaign.save()  # status unchanged: not a transition

    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


def test_it_refuses_to_activate_a_campaign_that_cannot_run() -> None:
    # given a draft whose only variant has no e-mail template although e-mail is a channel
    onsite = f.template("onsite")
    campaign = f.campaign(
        channels=("onsite", "email"),
        variants=[{"name": "A", "weight": 1, "onsite_template": onsite}],
        trigger="",
    )

    # when it is activated
    with pytest.raises(CampaignTransitionError) as refused:
        services.campaign_activate(campaign=campaign, actor_label="test")

    # then every problem is listed, and the campaign stays a draft
    message = refused.value.message
    assert "needs a trigger" in message
    assert "variant 'A' has no template for email" in message
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


@pytest.mark.parametrize(
    ("variants", "problem"),
    [
        ([{"name": "Control", "is_control": True}], "not the control"),
        ([{"name": "A", "weight": 0, "onsite_template": None}], "weights must add up"),
    ],
)
def test_it_needs_a_weighted_treatment_variant_to_activate(variants, problem) -> None:
    for variant in variants:
        if "onsite_template" in variant:
            variant["onsite_template"] = f.template("onsite")
    campaign = f.campaign(variants=variants)

    with pytest.raises(CampaignTransitionError, match=problem):
        services.campaign_activate(campaign=campaign, actor_label="test")


def test_it_announces_a_change_after_commit_and_bumps_the_version(django_capture_on_commit_callbacks) -> None:
    # given a listener like the decision path's cache
    received: list[int] = []

    def listener(sender, campaign_id, **kwargs) -> None:
        received.append(campaign_id)

    campaign_changed.connect(listener)
    try:
        campaign = f.campaign()
        before = services.campaigns_version()

        # when the campaign is activated, nothing is announced before commit
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.campaign_activate(campaign=campaign, actor_label="test")
        assert received == []

        # then after commit the signal carries the id and the Redis counter moved
        for callback in callbacks:
            callback()
        assert received == [campaign.pk]
        assert services.campaigns_version() == before + 1
    finally:
        campaign_changed.disconnect(listener)


def test_it_offers_convenience_wrappers() -> None:
    campaign = f.campaign()

    campaign = services.campaign_activate(campaign=campaign, actor_label="t")
    campaign = services.campaign_pause(campaign=campaign, actor_label="t")
    campaign = services.campaign_complete(campaign=campaign, actor_label="t")
    campaign = services.campaign_archive(campaign=campaign, actor_label="t")

    assert campaign.status == "archived"


def test_it_reports_a_campaign_deleted_meanwhile_as_not_found() -> None:
    campaign = f.campaign()
    Campaign.objects.filter(pk=campaign.pk).delete()

    with pytest.raises(NotFoundError):
        services.campaign_activate(campaign=campaign, actor_label="test")
