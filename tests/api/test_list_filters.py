"""The list filters as django-filter FilterSets (``plunk_events.api.filters``): the values they
accept, the 422 they give in the API's envelope, what they hand to the event service, and the
workflow list's ``search``, ``status``, ``sort`` and ``dir``."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from plunk_events.api.filters import (
    ContactEventFilterSet,
    ContactFilterSet,
    EventFilterSet,
    WorkflowFilterSet,
)
from plunk_events.api.params import lenient_int
from plunk_events.models import Contact, Event, Workflow, WorkflowStep
from plunk_events.services.errors import ValidationFailed

from .helpers import assert_validation

pytestmark = pytest.mark.django_db

SUBSCRIBED_ERROR = {
    "field": "subscribed",
    "message": "Expected true or false",
    "code": "invalid_type",
    "received": "string",
}


def query(text: str) -> QueryDict:
    return QueryDict(text)


# ---------------------------------------------------------------------------------------------
# The FilterSets on their own


def test_lenient_int_is_plunks_parse_int_or_default():
    for raw in (None, "", "0", "-3", "abc", "null", "1.5"):
        assert lenient_int(raw, 20, 100) == 20, raw
    assert lenient_int("7", 20, 100) == 7
    assert lenient_int("5000", 20, 100) == 100
    assert lenient_int(None, 50, 4) == 4  # the default is capped too


def test_event_filterset_hands_the_exact_name_to_the_service(project):
    assert EventFilterSet(query("eventName=signup")).validated().lookups() == {"name": "signup"}
    assert EventFilterSet(query("eventName=")).validated().lookups() == {}
    assert EventFilterSet(query("")).validated().lookups() == {}
    # Exact: surrounding spaces are part of the name, as they are when tracked.
    assert EventFilterSet(query("eventName=%20a%20")).validated().lookups() == {"name": " a "}


def test_contact_event_filterset_takes_only_a_uuid():
    contact_id = uuid.uuid4()
    filters = ContactEventFilterSet({"contactId": str(contact_id)})
    assert filters.is_valid()
    assert filters.lookups() == {"contact_id": contact_id}
    for bad in ("usage", "", f" {contact_id}", f"{contact_id}x"):
        assert not ContactEventFilterSet({"contactId": bad}).is_valid(), bad


def test_contact_filterset_filters_a_queryset(project):
    Contact.objects.create(project=project, email="a@acme.io", subscribed=True)
    Contact.objects.create(project=project, email="b@acme.io", subscribed=False)
    Contact.objects.create(project=project, email="c@other.io", subscribed=True)
    base = Contact.objects.filter(project=project).order_by("email")

    def emails(text):
        filters = ContactFilterSet(query(text), queryset=base).validated()
        return [c.email for c in filters.qs]

    assert emails("search=ACME") == ["a@acme.io", "b@acme.io"]
    assert emails("search=%20acme%20&subscribed=true") == ["a@acme.io"]
    assert emails("subscribed=false") == ["b@acme.io"]
    assert emails("subscribed=&search=") == ["a@acme.io", "b@acme.io", "c@other.io"]


@pytest.mark.parametrize("value", ["maybe", "1", "0", "True", "FALSE", "yes"])
def test_contact_filterset_refuses_anything_but_true_or_false(project, value):
    with pytest.raises(ValidationFailed) as caught:
        ContactFilterSet(query(f"subscribed={value}")).validated()
    assert caught.value.errors == [SUBSCRIBED_ERROR]


def test_workflow_filterset_reports_every_bad_value_in_order(project):
    with pytest.raises(ValidationFailed) as caught:
        WorkflowFilterSet(query("dir=up&sort=size&status=on")).validated()
    assert caught.value.errors == [
        {
            "field": "status",
            "message": "Invalid enum value. Expected 'active' | 'disabled', received 'on'",
            "code": "invalid_enum_value",
        },
        {
            "field": "sort",
            "message": "Invalid enum value. Expected 'createdAt' | 'updatedAt' | 'name' | "
            "'steps', received 'size'",
            "code": "invalid_enum_value",
        },
        {
            "field": "dir",
            "message": "Invalid enum value. Expected 'asc' | 'desc', received 'up'",
            "code": "invalid_enum_value",
        },
    ]


# ---------------------------------------------------------------------------------------------
# Contacts over HTTP


@pytest.mark.parametrize("value", ["maybe", "1", "True"])
def test_bad_subscribed_is_a_422_naming_the_field(sk, value):
    response = sk.get("/contacts", {"subscribed": value})
    assert_validation(response, [SUBSCRIBED_ERROR])


def test_a_bad_subscribed_is_reported_before_the_pagination_is_read(sk):
    """Filters run first, as before the FilterSet: one error, not the sort's as well."""
    response = sk.get("/contacts", {"subscribed": "maybe", "sort": "x", "cursor": "nope"})
    assert_validation(response, [SUBSCRIBED_ERROR])


def test_filtered_total_and_cursor_pages(sk, project):
    for i in range(5):
        Contact.objects.create(project=project, email=f"u{i}@acme.io", subscribed=i % 2 == 0)
    Contact.objects.create(project=project, email="x@other.io")
    first = sk.get("/contacts", {"search": "acme", "subscribed": "true", "limit": 2}).json()
    assert [c["email"] for c in first["data"]] == ["u4@acme.io", "u2@acme.io"]
    assert (first["total"], first["hasMore"]) == (3, True)
    rest = sk.get(
        "/contacts",
        {"search": "acme", "subscribed": "true", "limit": 2, "cursor": first["cursor"]},
    ).json()
    assert rest == {"data": rest["data"], "cursor": None, "hasMore": False, "total": 0}
    assert [c["email"] for c in rest["data"]] == ["u0@acme.io"]


# ---------------------------------------------------------------------------------------------
# Events over HTTP


def test_event_name_is_not_trimmed(sk, project):
    now = timezone.now()
    Event.objects.create(project=project, name="paid", created_at=now)
    Event.objects.create(project=project, name=" paid", created_at=now)
    assert [e["name"] for e in sk.get("/events", {"eventName": " paid"}).json()["events"]] == [
        " paid"
    ]


@pytest.mark.parametrize("contact_id", ["usage", "not-a-uuid", f" {uuid.UUID(int=3)}"])
def test_a_malformed_contact_id_lists_nothing_even_with_a_bad_cursor(sk, contact_id):
    response = sk.get(f"/events/contact/{contact_id}", {"cursor": "garbage"})
    assert response.status_code == 200
    assert response.json() == {"events": [], "cursor": None, "hasMore": False}


# ---------------------------------------------------------------------------------------------
# Workflows over HTTP: Plunk's search, status, sort and dir


def workflow(project, name, *, enabled=False, description=None, steps=0, age=0):
    made = Workflow.objects.create(
        project=project,
        name=name,
        enabled=enabled,
        description=description,
        created_at=timezone.now() - timedelta(minutes=age),
    )
    WorkflowStep.objects.bulk_create(
        WorkflowStep(project=project, workflow=made, type="DELAY", name=f"s{i}", order=i)
        for i in range(steps)
    )
    return made


def names(sk, **params) -> list[str]:
    response = sk.get("/workflows", params)
    assert response.status_code == 200, response.content
    return [w["name"] for w in response.json()["data"]]


@pytest.fixture
def workflows(project):
    return [
        workflow(project, "Onboarding", enabled=True, steps=2, age=4),
        workflow(project, "Billing", description="Dunning for failed ONBOARD payments", age=3),
        workflow(project, "Alerts", enabled=True, steps=3, age=2),
        workflow(project, "Churn", steps=1, age=1),
    ]


def test_default_order_is_newest_first(sk, workflows):
    assert names(sk) == ["Churn", "Alerts", "Billing", "Onboarding"]
    assert names(sk, sort="", dir="") == ["Churn", "Alerts", "Billing", "Onboarding"]
    assert names(sk, dir="asc") == ["Onboarding", "Billing", "Alerts", "Churn"]


def test_search_matches_name_or_description_case_insensitively(sk, workflows):
    assert names(sk, search="onboard") == ["Billing", "Onboarding"]
    assert names(sk, search="  ALERTS ") == ["Alerts"]
    assert names(sk, search="nothing") == []


def test_status_filters_on_enabled(sk, workflows):
    assert names(sk, status="active") == ["Alerts", "Onboarding"]
    assert names(sk, status="disabled") == ["Churn", "Billing"]
    assert names(sk, status="") == ["Churn", "Alerts", "Billing", "Onboarding"]


def test_sort_by_name_steps_and_update(sk, project, workflows):
    assert names(sk, sort="name", dir="asc") == ["Alerts", "Billing", "Churn", "Onboarding"]
    assert names(sk, sort="name") == ["Onboarding", "Churn", "Billing", "Alerts"]
    assert names(sk, sort="steps", dir="desc") == ["Alerts", "Onboarding", "Churn", "Billing"]
    assert names(sk, sort="steps", dir="asc") == ["Billing", "Churn", "Onboarding", "Alerts"]
    workflows[0].save()  # Onboarding changes last
    assert names(sk, sort="updatedAt")[0] == "Onboarding"


def test_sorted_steps_are_still_listed_in_full(sk, workflows):
    body = sk.get("/workflows", {"sort": "steps"}).json()
    assert [len(w["steps"]) for w in body["data"]] == [3, 2, 1, 0]


def test_filters_and_pages_together(sk, workflows):
    page = sk.get("/workflows", {"status": "active", "pageSize": 1, "page": 2}).json()
    assert (page["total"], page["page"], page["pageSize"], page["totalPages"]) == (2, 2, 1, 2)
    assert [w["name"] for w in page["data"]] == ["Onboarding"]


@pytest.mark.parametrize(
    ("params", "field", "expected"),
    [
        ({"status": "enabled"}, "status", "'active' | 'disabled'"),
        ({"status": "ACTIVE"}, "status", "'active' | 'disabled'"),
        ({"sort": "created_at"}, "sort", "'createdAt' | 'updatedAt' | 'name' | 'steps'"),
        ({"dir": "DESC"}, "dir", "'asc' | 'desc'"),
    ],
)
def test_unknown_status_sort_or_dir_is_422(sk, workflows, params, field, expected):
    value = next(iter(params.values()))
    assert_validation(
        sk.get("/workflows", params),
        [
            {
                "field": field,
                "message": f"Invalid enum value. Expected {expected}, received '{value}'",
                "code": "invalid_enum_value",
            }
        ],
    )


def test_other_projects_workflows_stay_out_of_a_search(sk, workflows, other_project):
    workflow(other_project, "Onboarding elsewhere", enabled=True)
    assert names(sk, search="onboarding", status="active") == ["Onboarding"]


# ---------------------------------------------------------------------------------------------
# OpenAPI: the parameters come from the FilterSets


def test_the_schema_documents_the_filtersets(client):
    schema = json.loads(client.get("/openapi.json").content)

    def parameters(path):
        return {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}

    def param(name, type_, description):
        return {"in": "query", "name": name, "schema": {"type": type_}, "description": description}

    assert parameters("/events")["eventName"] == param(
        "eventName", "string", "Only events with this exact name."
    )
    contacts = parameters("/contacts")
    assert contacts["search"] == param("search", "string", "Case-insensitive substring of email.")
    assert contacts["subscribed"] == param("subscribed", "boolean", "Only (un)subscribed contacts.")
    workflows = parameters("/workflows")
    assert set(workflows) == {"page", "pageSize", "search", "status", "sort", "dir"}
    assert workflows["search"]["schema"] == {"type": "string"}
    assert workflows["status"]["schema"]["enum"] == ["active", "disabled"]
    assert set(workflows["sort"]["schema"]["enum"]) == {"createdAt", "updatedAt", "name", "steps"}
    assert workflows["dir"]["schema"]["enum"] == ["asc", "desc"]
    for name in ("status", "sort", "dir"):
        assert "422" in workflows[name]["description"], name
    assert "status" in schema["paths"]["/workflows"]["get"]["responses"]["422"]["description"]
    # Not lists of events, or not filtered by a query: no ``eventName`` there.
    assert set(parameters("/events/contact/{contactId}")) == {"contactId", "limit", "cursor"}
    assert set(parameters("/events/stats")) == {"startDate", "endDate"}
