"""The OpenAPI schema tells the truth: schemathesis runs every operation with every check against the app.

A client generated from /api/schema/ must never send a request the server refuses as malformed, and the server
must refuse what the schema forbids. The app is called in-process (WSGI), inside the test's transaction, with
an API key holding every scope; examples are bounded and derandomized so a run is the same run every time.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

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
    }
)
schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)

# Refusals of a well-formed request that no schema can foresee: they depend on stored data (an unknown
# intervention, a reused Idempotency-Key) or on a rule across fields or inside a text (a period whose end is
# not after its start, a template or rule that does not compile). Everything else a schema-valid request gets
# refused with is a disagreement between the schema and the server.
NOT_MALFORMED = {
    "conditions_not_met",
    "idempotency_key_reused",
    "invalid_period",
    "invalid_rule",
    "template_error",
    "unknown_intervention",
}


def _refused_for_its_meaning(response: Any) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    if error["code"] in NOT_MALFORMED:
        return True
    # A body naming an object that does not exist (a campaign's segment or template).
    details = error.get("details") or {}
    return error["code"] == "invalid" and bool(details) and all(v == ["not found"] for v in details.values())


def positive_data_acceptance_unless_refused_for_meaning(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code in (400, 422) and _refused_for_its_meaning(response):
        return None
    return positive_data_acceptance(ctx, response, case)


load_all_checks()
CHECKS_RUN = [check for check in CHECKS.get_all() if check is not positive_data_acceptance] + [
    positive_data_acceptance_unless_refused_for_meaning
]


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


@pytest.mark.xfail(
    reason="disagreements still open: cross-field rules of campaigns (one control variant) and templates "
    "(on-site kind), preference locales, ws-ticket room prefixes, an empty POST /interventions body",
    strict=False,
)
@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_it_answers_every_operation_as_its_schema_says(case, auth_headers) -> None:
    # when a generated request (valid or not, as the case says) is sent; then every check holds
    case.call_and_validate(headers=auth_headers, checks=CHECKS_RUN)
