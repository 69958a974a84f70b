"""The consume_events command as its own process: it decides, and on SIGTERM finishes and commits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from interventions.models import Intervention
from messaging.kafka import client_config, topic
from tests import fixtures as f
from tests.messaging.kafka_topics import isolate_topics, produce
from tests.processes import database_url

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def test_it_decides_then_stops_cleanly_on_sigterm_with_its_offsets_committed(settings, tmp_path):
    # given a campaign, a prediction on a fresh topic, and the command running in its own process
    prefix = isolate_topics(settings)
    f.campaign_live(channels=["onsite"], channel_strategy="fixed")
    user_id, group = f.unique("u"), f"h5-{uuid.uuid4().hex[:8]}"
    produce(
        [
            (
                topic("prediction-results"),
                user_id.encode(),
                f.encode(f.prediction_body(user_id=user_id, score=0.9)),
            )
        ]
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_CONSUMER_GROUP": group,
        "DJANGO_SETTINGS_MODULE": "intervention_engine.test_settings",
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "consumer.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "consume_events", "--poll-timeout", "0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # when the intervention is there and the process is told to stop
        deadline = time.monotonic() + 45
        while not Intervention.objects.filter(user_id=user_id).exists():
            assert process.poll() is None, (tmp_path / "consumer.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no decision in time"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()

    # then it exited cleanly, having committed the offset past the prediction
    assert code == 0
    consumer = Consumer({**client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic("prediction-results"), 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset == 1
    assert Intervention.objects.get(user_id=user_id).status == Intervention.Status.PENDING
