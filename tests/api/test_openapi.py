"""The OpenAPI 3 schema (drf-spectacular) describes the real routes and shapes, validates
without warnings, and the /docs/ viewer is served; so does the README's recipe for a host site."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from django.core.management import call_command
from drf_spectacular.settings import spectacular_settings
from rest_framework.test import APIClient

from plunk_events.services.projects import create_project

# DELETE on the GET paths is ``DELETE /events/<name>`` for a name spelling that path (README,
# "Events").
EVENT_PATHS = {
    "/events": {"get"},
    "/events/names": {"get", "delete"},
    "/events/stats": {"get", "delete"},
    "/events/contact/{contactId}": {"get", "delete"},
    "/events/{eventName}/usage": {"get", "delete"},
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


def operations(schema):
    for path, ops in schema["paths"].items():
        for method, operation in ops.items():
            yield path, method, operation


def test_delete_on_get_paths_is_documented_as_the_delete_by_name_it_is(schema):
    for path, name in [
        ("/events/names", '"names"'),
        ("/events/stats", '"stats"'),
        ("/events/contact/{contactId}", '"contact/{contactId}"'),
        ("/events/{eventName}/usage", '"{eventName}/usage"'),
    ]:
        operation = schema["paths"][path]["delete"]
        assert operation["summary"] == f"Delete the events named {name}"
        assert operation["security"] == [{"secretKey": []}]
        expected = schema["paths"]["/events/{eventName}"]["delete"]["responses"]
        assert operation["responses"] == expected, path


@pytest.mark.django_db
def test_allow_header_lists_exactly_the_documented_methods(schema):
    """Every documented path answers with an ``Allow`` header naming the methods its schema
    documents (plus HEAD for GET, and OPTIONS), so clients reading either see the same API."""
    project = create_project("Allow")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {project.secret_key}")
    values = {
        "{contactId}": "c1",
        "{eventName}": "e1",
        "{id}": "00000000-0000-0000-0000-000000000001",
    }
    for path, ops in schema["paths"].items():
        concrete = path
        for placeholder, value in values.items():
            concrete = concrete.replace(placeholder, value)
        response = client.options(concrete)
        assert response.status_code == 200, (path, response.content)
        allowed = {m.strip().lower() for m in response["Allow"].split(",")}
        documented = set(ops) | {"options"} | ({"head"} if "get" in ops else set())
        assert allowed == documented, path


def test_statuses_the_api_can_return_are_documented(schema):
    for path, method, operation in operations(schema):
        responses = set(operation["responses"])
        # Key, a body that is not JSON, a query or path value the database cannot store, rate
        # limit, database down.
        assert {"401", "415", "422", "429", "503"} <= responses, (method, path)
        if "requestBody" in operation:
            # Malformed JSON, body too large.
            assert {"400", "413"} <= responses, (method, path)
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path, status)
    batch = schema["paths"]["/v1/track/batch"]["post"]["responses"]
    assert "Idempotency-Key" in batch["400"]["description"]
    assert "409" in batch


def test_lenient_numbers_and_strict_enums_are_documented(schema):
    def parameters(path):
        return {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}

    for path, name in [
        ("/events", "limit"),
        ("/events/contact/{contactId}", "limit"),
        ("/contacts", "limit"),
        ("/workflows", "page"),
        ("/workflows", "pageSize"),
    ]:
        parameter = parameters(path)[name]
        assert parameter["schema"]["type"] == "integer"
        assert "`null`" in parameter["description"], (path, name)
        assert "gives the default" in parameter["description"], (path, name)
    contacts = parameters("/contacts")
    assert contacts["sort"]["schema"]["enum"] == ["createdAt", "email"]
    assert contacts["dir"]["schema"]["enum"] == ["asc", "desc"]
    assert "422" in contacts["sort"]["description"]
    assert "sort" in schema["paths"]["/contacts"]["get"]["responses"]["422"]["description"]


@pytest.mark.django_db
def test_docs_viewer_is_served(client):
    response = client.get("/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"openapi.json" in response.content


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_openapi_recipe() -> tuple[str, str]:
    """The settings and urls parts of the README's OpenAPI code block."""
    text = README.read_text(encoding="utf-8")
    start = text.index('# settings.py\nINSTALLED_APPS += ["drf_spectacular"')
    block = text[start : text.index("```", start)]
    settings_part, urls_part = block.split("# urls.py")
    return settings_part, urls_part


@pytest.mark.django_db
def test_readme_recipe_serves_json_at_openapi_json_and_swagger_ui_without_a_cdn(
    settings, monkeypatch
):
    """The README's recipe, followed literally in a site that mounts the app at the root."""
    settings_part, urls_part = readme_openapi_recipe()
    host_settings: dict = {"INSTALLED_APPS": []}
    exec(settings_part, host_settings)
    assert set(host_settings["INSTALLED_APPS"]) <= set(settings.INSTALLED_APPS)
    urlconf = types.ModuleType("readme_openapi_urls")
    prelude = "from django.urls import include, path\n"
    prelude += 'urlpatterns = [path("", include("plunk_events.urls"))]\n'
    exec(prelude + urls_part, urlconf.__dict__)
    monkeypatch.setitem(sys.modules, urlconf.__name__, urlconf)
    settings.ROOT_URLCONF = urlconf.__name__
    settings.REST_FRAMEWORK = host_settings["REST_FRAMEWORK"]

    # drf-spectacular reads SPECTACULAR_SETTINGS once, at import.
    for key, value in host_settings["SPECTACULAR_SETTINGS"].items():
        monkeypatch.setattr(spectacular_settings, key, value)

    schema_response = APIClient().get("/openapi.json")
    docs = APIClient().get("/docs/")
    assert schema_response.status_code == 200
    assert schema_response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    served = json.loads(schema_response.content)
    assert served["openapi"].startswith("3.") and "/v1/track" in served["paths"]
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
    assert "openapi.json" in html
