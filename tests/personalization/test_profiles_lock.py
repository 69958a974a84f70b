"""profiles_lock: one call locks the known shoppers and creates the new ones, as model instances."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from personalization.models import Profile
from personalization.services import profiles_lock

pytestmark = pytest.mark.django_db


def test_it_returns_known_and_new_shoppers_with_their_stored_values():
    # given one known shopper with data, and two never seen
    known = Profile.objects.create(
        user_id=f"u-{uuid.uuid4().hex[:8]}", email="k@example.com", attributes={"tier": "gold"}
    )
    new = sorted(f"u-{uuid.uuid4().hex[:8]}" for _ in range(2))

    # when their profiles are locked in a transaction
    with transaction.atomic():
        profiles = profiles_lock(user_ids=[*new, known.user_id, new[0]])

    # then all three come back: the known one as stored, the new ones created with the model's defaults
    assert sorted(profiles) == sorted([known.user_id, *new])
    assert profiles[known.user_id].pk == known.pk
    assert profiles[known.user_id].attributes == {"tier": "gold"}
    for user_id in new:
        profile = profiles[user_id]
        assert profile.pk == Profile.objects.get(user_id=user_id).pk
        assert (profile.attributes, profile.last_cart, profile.onsite_seq) == ({}, {}, 0)
        assert profile.total_revenue == Decimal("0")
        assert profile.created_at is not None
