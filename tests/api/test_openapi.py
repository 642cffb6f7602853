"""The OpenAPI 3 schema (drf-spectacular) describes the real routes and shapes, validates
without warnings, and the /docs/ viewer is served."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

EVENT_PATHS = {
    "/events": {"get"},
    "/events/names": {"get"},
    "/events/stats": {"get"},
    "/events/contact/{contactId}": {"get"},
    "/events/{eventName}/usage": {"get"},
    "/events/{eventName}": {"delete"},
}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_schema_command_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.json"
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--format",
        "openapi-json",
        "--file",
        str(out),
    )
    assert json.loads(out.read_text())["openapi"].startswith("3.")


def test_schema_is_openapi_3_with_every_route(schema):
    assert schema["openapi"].startswith("3.")
    assert {"/v1/track": {"post"}, "/v1/track/batch": {"post"}}.items() <= {
        path: set(ops) for path, ops in schema["paths"].items()
    }.items()
    for path, methods in EVENT_PATHS.items():
        assert set(schema["paths"][path]) == methods, path


def test_each_operation_has_a_unique_id_and_the_right_key(schema):
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    track_security = schema["paths"]["/v1/track"]["post"]["security"]
    assert track_security == [{"trackKey": []}]
    for path in EVENT_PATHS:
        for op in schema["paths"][path].values():
            assert op["security"] == [{"secretKey": []}], path
    schemes = schema["components"]["securitySchemes"]
    assert schemes["secretKey"]["scheme"] == schemes["trackKey"]["scheme"] == "bearer"


def test_track_request_and_response_shapes(schema):
    operation = schema["paths"]["/v1/track"]["post"]
    body = resolve(schema, operation["requestBody"]["content"]["application/json"]["schema"])
    assert {"email", "event", "subscribed", "data"} <= set(body["properties"])
    assert set(body["required"]) == {"email", "event"}
    assert body["properties"]["subscribed"]["type"] == "boolean"
    assert body["properties"]["data"]["type"] == "object"
    assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    ok = resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(ok["properties"]) == {"success", "data"}
    data = resolve(schema, ok["properties"]["data"])
    assert set(data["properties"]) == {"contact", "event", "timestamp"}
    assert {"400", "401", "409", "422"} <= set(operation["responses"])


def test_error_envelope_component(schema):
    components = schema["components"]["schemas"]
    envelope = components["Error"]
    assert set(envelope["properties"]) == {"success", "message", "error", "timestamp"}
    error = resolve(schema, envelope["properties"]["error"])
    assert {"code", "message", "statusCode", "requestId", "errors", "details", "suggestion"} == set(
        error["properties"]
    )
    item = resolve(schema, error["properties"]["errors"]["items"])
    assert {"field", "message", "code"} <= set(item["properties"])
    for path, ops in schema["paths"].items():
        if not path.startswith(("/v1/track", "/events")):
            continue
        for op in ops.values():
            ref = op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", path


def test_events_response_shapes(schema):
    def ok(path, method="get"):
        node = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        return resolve(schema, node["schema"])

    listed = ok("/events")
    assert set(listed["properties"]) == {"events", "cursor", "hasMore"}
    item = resolve(schema, listed["properties"]["events"]["items"])
    assert set(item["properties"]) == {
        "id",
        "name",
        "contactId",
        "emailId",
        "data",
        "createdAt",
        "contact",
    }
    contact_item = resolve(
        schema, ok("/events/contact/{contactId}")["properties"]["events"]["items"]
    )
    assert "contact" not in contact_item["properties"]
    assert set(ok("/events/names")["properties"]) == {"eventNames"}
    stats = ok("/events/stats")
    assert stats["type"] == "array"
    assert set(resolve(schema, stats["items"])["properties"]) == {"name", "count"}
    usage = ok("/events/{eventName}/usage")
    assert set(usage["properties"]) == {
        "usedInSegments",
        "usedInWorkflows",
        "totalCount",
        "uniqueContacts",
        "canDelete",
        "isSystemEvent",
        "deletion",
    }
    assert "deletion" not in usage["required"]  # only while a delete job is unfinished
    deletion = usage["properties"]["deletion"]
    deletion = resolve(schema, deletion.get("allOf", [deletion])[0])
    assert set(deletion["properties"]) == {"status", "deleted", "startedAt"}
    assert set(ok("/events/{eventName}", "delete")["properties"]) == {"deletedCount"}
    params = {p["name"] for p in schema["paths"]["/events"]["get"]["parameters"]}
    assert params == {"eventName", "limit", "cursor"}
    params = {p["name"] for p in schema["paths"]["/events/stats"]["get"]["parameters"]}
    assert params == {"startDate", "endDate"}


def test_batch_is_documented(schema):
    operation = schema["paths"]["/v1/track/batch"]["post"]
    body = resolve(schema, operation["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["properties"]) == {"events"}
    ok = resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(ok["properties"]) == {"success", "accepted", "rejected", "results"}
    assert {"413", "422"} <= set(operation["responses"])


@pytest.mark.django_db
def test_docs_viewer_is_served(client):
    response = client.get("/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"openapi.json" in response.content
