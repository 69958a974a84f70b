"""Intervention and Delivery moved from campaigns to interventions: a database made before the move
upgrades with ``migrate`` alone, its rows untouched and the permissions granted on them still granted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_MOVE = [
    ("campaigns", "0004_hot_path_indexes"),
    ("tracking", "0001_initial"),
    ("interventions", None),
]


def _migrate(targets: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([(app, name) for app, name in targets if name is not None]).apps


def _latest() -> list[tuple[str, str | None]]:
    executor = MigrationExecutor(connection)
    return list(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_it_upgrades_a_database_made_before_the_move():
    # given: the schema as it was, with an intervention, its delivery, a tracking event and a grant
    old = _migrate(BEFORE_MOVE)
    Campaign = old.get_model("campaigns", "Campaign")
    Intervention = old.get_model("campaigns", "Intervention")
    Delivery = old.get_model("campaigns", "Delivery")
    Profile = old.get_model("personalization", "Profile")
    TrackingEvent = old.get_model("tracking", "TrackingEvent")
    ContentType = old.get_model("contenttypes", "ContentType")
    Permission = old.get_model("auth", "Permission")
    Group = old.get_model("auth", "Group")

    campaign = Campaign.objects.create(name="Before the move", trigger="cart_abandoned")
    profile = Profile.objects.create(user_id="u-old")
    intervention = Intervention.objects.create(
        id=uuid.uuid4(),
        campaign=campaign,
        profile=profile,
        user_id="u-old",
        trigger_event_id="e-1",
        trigger="cart_abandoned",
        channel="email",
        content={"subject": "Hi"},
    )
    delivery = Delivery.objects.create(id=uuid.uuid4(), intervention=intervention, channel="email")
    TrackingEvent.objects.create(
        event_id="t-1",
        type="opened",
        source="api",
        intervention=intervention,
        delivery=delivery,
        user_id="u-old",
        occurred_at="2026-12-01T10:00:00+00:00",
        received_at="2026-12-01T10:00:00+00:00",
    )
    content_type, _ = ContentType.objects.get_or_create(app_label="campaigns", model="intervention")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename="view_intervention", defaults={"name": "Can view intervention"}
    )
    group = Group.objects.create(name="old-viewers")
    group.permissions.add(permission)

    # when: migrate alone
    _migrate(_latest())

    # then: the same rows through the new models, and the grant now names interventions
    from django.contrib.auth.models import Group as LiveGroup

    from interventions.models import Delivery as LiveDelivery
    from interventions.models import Intervention as LiveIntervention
    from tracking.models import TrackingEvent as LiveTrackingEvent

    moved = LiveIntervention.objects.get(pk=intervention.pk)
    assert moved.content == {"subject": "Hi"}
    assert moved.campaign.name == "Before the move"
    assert LiveDelivery.objects.get(pk=delivery.pk).intervention_id == intervention.pk
    assert LiveTrackingEvent.objects.get(event_id="t-1").delivery_id == delivery.pk
    granted = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in LiveGroup.objects.get(name="old-viewers").permissions.all()
    }
    assert granted == {"interventions.view_intervention"}
