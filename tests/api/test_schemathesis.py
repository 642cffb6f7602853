"""Schemathesis against ``/openapi.json``: every documented operation is called in-process (WSGI)
with generated requests, valid and invalid, and each response must match the schema (status
code, content type, body), never be a 5xx, and methods the schema does not list must be a 405
whose ``Allow`` header agrees with it. Part of ``make test`` on SQLite and PostgreSQL.

Each operation starts from a project holding a contact with events, a segment and a workflow;
half the generated ids and names are swapped for theirs, so 200s are checked as well as 404s.

Bounded: ``max-examples`` per operation and phase (override with ``SCHEMATHESIS_MAX_EXAMPLES``),
a fixed seed so CI is reproducible (``SCHEMATHESIS_SEED`` to explore another one), no Hypothesis
example database (``.hypothesis/`` only caches, and is gitignored).
"""

from __future__ import annotations

import os
import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

pytestmark = pytest.mark.schemathesis

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # Methods the schema does not list must be a 405 whose ``Allow`` header matches the schema.
    unsupported_method,
    allow_header_conformance,
]


CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": int(os.environ.get("SCHEMATHESIS_SEED", "20250101")),
        "suppress-health-check": ["all"],
        "generation": {
            "max-examples": int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")),
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
    }
)
# Loaded at collection through the WSGI app: the document served at /openapi.json is the one
# under test. (``schemathesis.pytest.from_fixture`` would defer this, but it breaks on pytest 9.2.)
schema = schemathesis.openapi.from_wsgi("/openapi.json", get_wsgi_application(), config=CONFIG)


@pytest.fixture
def seeded(db, project) -> dict[str, str]:
    """Real rows, made through the API, for the swapped path parameters."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {project.secret_key}")

    def post(path, body):
        response = client.post(path, body, format="json")
        assert response.status_code in (200, 201), response.content
        return response.json()

    tracked = post(
        "/v1/track",
        {"email": "ada@example.com", "event": "purchase", "data": {"plan": "pro", "n": 1.5}},
    )
    post("/v1/track", {"email": "ada@example.com", "event": "signup", "subscribed": False})
    segment = post(
        "/segments",
        {
            "name": "Buyers",
            "condition": {
                "logic": "AND",
                "groups": [{"filters": [{"field": "event.purchase", "operator": "triggered"}]}],
            },
        },
    )
    template = post(
        "/templates",
        {"name": "Hi", "subject": "Hi {{plan}}", "body": "<p>Hi</p>", "from": "hi@example.com"},
    )
    workflow = post("/workflows", {"name": "Welcome", "eventName": "signup", "enabled": True})
    step = post(
        f"/workflows/{workflow['id']}/steps",
        {"type": "DELAY", "name": "A day", "config": {"amount": 1, "unit": "days"}},
    )
    transition = client.get(f"/workflows/{workflow['id']}").json()["transitions"][0]
    execution = post(
        f"/workflows/{workflow['id']}/executions", {"contactId": tracked["data"]["contact"]}
    )
    return {
        "contactId": tracked["data"]["contact"],
        "eventName": "purchase",
        "stepId": step["id"],
        "transitionId": transition["id"],
        "executionId": execution["id"],
        "/contacts/{id}": tracked["data"]["contact"],
        "/segments/{id}": segment["id"],
        "/workflows/{id}": workflow["id"],
        "/templates/{id}": template["id"],
    }


def use_seeded_values(case, seeded: dict[str, str]) -> None:
    """Swap about half the generated path parameters (chosen by a hash of the value, so a
    seed replays) for ids and names that exist."""
    path = case.operation.path
    for name, value in (case.path_parameters or {}).items():
        if name == "id" and path.startswith("/workflows/{id}/"):
            path = "/workflows/{id}"  # the workflow's steps, transitions, executions
        real = seeded.get(path if name == "id" else name)
        if real is not None and zlib.crc32(str(value).encode()) % 2 == 0:
            case.path_parameters[name] = real


@pytest.fixture
def auth_headers(project, settings, seeded):
    # Rate limits would turn a fuzz run into 429s; they have their own tests.
    settings.PLUNK_EVENTS = {
        **settings.PLUNK_EVENTS,
        "RATE_LIMITS": {"track": None, "api": None, "auth_failures": None},
    }
    # The WSGI handler closes the connection after each request, which would end the test's
    # transaction on PostgreSQL; Django's test client keeps it open the same way. (After
    # ``seeded``: the test client reconnects the receiver when its request is done.)
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {project.secret_key}"}
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
def test_responses_conform_to_the_schema(case, auth_headers, seeded):
    use_seeded_values(case, seeded)
    case.call_and_validate(headers=auth_headers, checks=CHECKS)
