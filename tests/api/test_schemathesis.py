"""The OpenAPI schema tells the truth: schemathesis runs every operation with every check against the app.

A client generated from /api/schema/ must never send a request the server refuses as malformed, and the server
must refuse what the schema forbids. The app is called in-process (WSGI), inside the test's transaction, with
an API key holding every scope; examples are bounded and derandomized so a run is the same run every time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario

from intervention_engine.wsgi import application

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 13,
        # The fixture sends the key; the fuzzer's own Authorization values would only test our 401.
        "generation": {
            "mode": "all",
            "max-examples": 15,
            "deterministic": True,
            "with-security-parameters": False,
        },
        # Which refusals of a schema-valid request are fair: 404 (an object named in the path or the body does
        # not exist), 409 (its state forbids the change) and 422 (well-formed, refused for what it says, and
        # documented on each operation that answers it: core.errors.UnprocessableError, a reused
        # Idempotency-Key, conditions that do not hold for the shopper). These depend on stored data or on
        # rules no OpenAPI 3.0 schema can state. 400 is a refusal of the request's shape and is never fair:
        # there is no list of error codes the check forgives.
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
            }
        },
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)
load_all_checks()
EVERY_CHECK = CHECKS.get_all()

# The coverage phase sends one valid body per value of every enum: some 600 time-zone names for each body
# with a time zone (preferences, a shopper's profile), minutes of requests that show nothing the first few do
# not. Each operation sends the first TIME_ZONES_SENT names it meets; the fuzzing phase draws from them all.
TIME_ZONES_SENT = 25
_time_zones_sent: defaultdict[str, set[str]] = defaultdict(set)


def _one_time_zone_too_many(case: Any) -> bool:
    data = case.meta.phase.data if case.meta is not None else None
    if not isinstance(data, CoveragePhaseData) or data.scenario != CoverageScenario.VALID_OBJECT:
        return False
    body = case.body if isinstance(case.body, dict) else {}
    user = body.get("user")
    user = user if isinstance(user, dict) else {}
    zone = body.get("timezone", user.get("timezone"))
    sent = _time_zones_sent[case.operation.label]
    if not isinstance(zone, str) or zone in sent:
        return False
    if len(sent) >= TIME_ZONES_SENT:
        return True
    sent.add(zone)
    return False


@pytest.fixture
def auth_headers(db):
    from api.models import Scope
    from api.services import api_key_create

    _, raw_key = api_key_create(name="schemathesis", scopes=Scope.values)
    # As Django's test client does: the request cycle must not close the test's connection (CONN_MAX_AGE=0).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {raw_key}"}
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_it_answers_every_operation_as_its_schema_says(case, auth_headers) -> None:
    if _one_time_zone_too_many(case):
        return
    # when a generated request (valid or not, as the case says) is sent; then every check holds
    case.call_and_validate(headers=auth_headers, checks=EVERY_CHECK)
