"""Two deciders on one event (a consumer-group rebalance): the second one's batch is decided once more."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from django.db import connection

from delivery.services import BatchOutcome, decisions_process_batch
from interventions.models import Intervention
from personalization.models import Profile
from tests import fixtures as f

pytestmark = pytest.mark.django_db(transaction=True)


def _blocked_on_a_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    ).fetchone()
    return bool(row and row[0])


def _decide_while_another_consumer_commits(*, same_shopper: bool) -> list[BatchOutcome]:
    """Another consumer has decided our event (for our shopper, holding the profile's lock as the
    decision path does, or for another shopper) and not committed yet; ours decides the same event
    meanwhile, and the other one commits while ours waits."""
    campaign = f.campaign_live(channels=["email"])
    user_id = f.unique("u")
    event = f.prediction(user_id=user_id, score=0.9)
    campaigns = f.active_set()
    ours_profile = Profile.objects.create(user_id=user_id, email=f"{user_id}@example.com")
    theirs = ours_profile if same_shopper else Profile.objects.create(user_id=f.unique("u"))
    params = connection.get_connection_params()
    other = psycopg.connect(**params)
    watcher = psycopg.connect(**params, autocommit=True)
    their_decision = uuid.uuid4()
    other.execute("SELECT id FROM personalization_profile WHERE id = %s FOR UPDATE", [theirs.pk])
    other.execute(
        "INSERT INTO campaigns_intervention (id, campaign_id, profile_id, user_id, session_id, cart_id, "
        "trigger_event_id, trigger, status, suppression_reason, is_holdout, channel, content, context, "
        "created_at, updated_at) VALUES (%s, %s, %s, %s, '', '', %s, %s, 'pending', '', false, 'email', "
        "'{}', '{}', now(), now())",
        [their_decision, campaign.pk, theirs.pk, theirs.user_id, event.event_id, event.trigger],
    )
    outcomes: list[BatchOutcome] = []
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            outcomes.append(decisions_process_batch(events=[event], campaigns=campaigns, after_commit=False))
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    ours = threading.Thread(target=decide)
    ours.start()
    deadline = time.monotonic() + 10
    while not _blocked_on_a_lock(watcher) and time.monotonic() < deadline:
        time.sleep(0.02)
    blocked = _blocked_on_a_lock(watcher)
    other.commit()
    ours.join(20)
    other.close()
    watcher.close()
    assert blocked, "ours should wait for the other consumer's transaction"
    assert not errors, errors
    assert list(Intervention.objects.filter(campaign=campaign).values_list("pk", flat=True)) == [
        their_decision
    ]
    assert Profile.objects.get(user_id=user_id).last_seen_at == event.occurred_at
    return outcomes


def test_a_consumer_waits_for_another_deciding_the_same_shopper_and_skips_its_decision():
    # given/when another consumer decides our event for our shopper and commits while ours waits on the
    # shopper's profile
    outcomes = _decide_while_another_consumer_commits(same_shopper=True)

    # then ours saw that decision once it had the profile: a duplicate, no second intervention, and the
    # shopper's profile still took the event in (asserted by the helper)
    assert outcomes[0].duplicates == 1
    assert outcomes[0].created == []


def test_an_insert_that_collides_with_a_decision_committed_meanwhile_decides_the_batch_again():
    # given/when another consumer decided the same event id under another shopper (nothing serialises
    # the two on a profile) and commits while our insert waits on the (campaign, event) key
    outcomes = _decide_while_another_consumer_commits(same_shopper=False)

    # then our batch was decided once more, found the decision and skipped it: no error, no second row
    assert outcomes[0].duplicates == 1
    assert outcomes[0].created == []
