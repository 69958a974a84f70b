"""On-site interventions decided from Kafka reach the shopper's group as committed, without a re-read."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from uuid import uuid4

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone
from prometheus_client import REGISTRY

from delivery.services import decisions_process_batch
from gateway import realtime
from interventions.models import Intervention
from tests import fixtures as f


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_committed_onsite_decision_is_pushed_with_the_frame_the_replay_log_gives():
    # given an on-site campaign and a shopper with an open tab (a channel in the shopper's group)
    campaign = await database_sync_to_async(f.campaign_live)(channels=["onsite"], channel_strategy="fixed")
    user_id = f.unique("u")
    layer = get_channel_layer()
    tab = await layer.new_channel()
    await layer.group_add(realtime.user_group(user_id), tab)
    pushes_before = _push_count()

    # when a prediction is decided and committed (hand-off after commit, in the caller)
    def decide() -> None:
        decisions_process_batch(events=[f.prediction(user_id=user_id, score=0.9)], campaigns=f.active_set())

    await database_sync_to_async(decide)()
    message = await asyncio.wait_for(layer.receive(tab), timeout=10)
    # (and the time from commit to push is measured, once for the batch)
    assert _push_count() == pushes_before + 1

    # then the tab gets exactly the frame a resume would replay from PostgreSQL
    intervention = await database_sync_to_async(Intervention.objects.get)(user_id=user_id, campaign=campaign)
    assert message["frame"] == realtime.intervention_frame(intervention)
    assert message["frame"]["seq"] == 1
    assert await database_sync_to_async(realtime.onsite_replay)(user_id=user_id, last_seq=0) == [
        message["frame"]
    ]


def _push_count() -> float:
    return REGISTRY.get_sample_value("ie_onsite_push_seconds_count") or 0.0


def test_rows_already_expired_are_not_pushed():
    # given a row whose expiry has passed (the hand-off thread ran late)
    row = SimpleNamespace(
        id=uuid4(),
        seq=3,
        campaign_id=1,
        variant_id=None,
        content={},
        expires_at=timezone.now() - timedelta(1),
    )

    # when it is handed to the push, then nothing is sent
    assert realtime.onsite_rows_push(rows=[("u-late", row)]) == 0
