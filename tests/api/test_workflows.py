"""``/workflows``: create with the automatic TRIGGER step, steps, paging, the delete guard.

Steps, transitions and executions have their own routes (``test_workflow_graph.py``,
``test_workflow_executions.py``); here ``steps`` is the linear-chain convenience of POST and
PATCH."""

from __future__ import annotations

import re
import uuid

import pytest

from plunk_events.api.formatting import iso_timestamp
from plunk_events.models import Template, Workflow, WorkflowStep
from plunk_events.services import deletion

from .helpers import assert_error, assert_field_errors, assert_not_found, assert_secret_key_required

pytestmark = pytest.mark.django_db

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

WAIT = {"type": "WAIT_FOR_EVENT", "name": "Wait for payment", "config": {"eventName": "paid"}}
EMAIL = {
    "type": "SEND_EMAIL",
    "name": "Welcome",
    "config": {"templateId": "8c1f6a52-1f0e-4d2b-9a7e-3f5b2d1c0e9a"},
}
DELAY = {"type": "DELAY", "name": "Two days", "config": {"amount": 2, "unit": "days"}}


@pytest.fixture(autouse=True)
def _email_template(project):
    """The template EMAIL sends: a SEND_EMAIL step must name one of the project's templates."""
    template_id = EMAIL["config"]["templateId"]
    Template.objects.create(id=template_id, project=project, name="Welcome", subject="s", body="b")


def create(sk, **body):
    body.setdefault("name", "Onboarding")
    body.setdefault("eventName", "signup")
    return sk.post("/workflows", body, format="json")


def public_steps(body) -> list[dict]:
    return [
        {k: v for k, v in step.items() if k not in ("id", "position")} for step in body["steps"]
    ]


def chain(body) -> list[tuple]:
    """The transitions as (from step index, to step index, condition, waitOutcome)."""
    index = {step["id"]: i for i, step in enumerate(body["steps"])}
    return [
        (index[t["fromStepId"]], index[t["toStepId"]], t["condition"], t["waitOutcome"])
        for t in body["transitions"]
    ]


# ---------------------------------------------------------------------------------------------
# Create


def test_create_makes_an_event_workflow_with_its_trigger_step_first(sk, project):
    response = create(
        sk,
        name="Onboarding",
        eventName="  user.signup  ",
        description="Welcome flow",
        steps=[EMAIL, DELAY, WAIT],
    )
    assert response.status_code == 201
    body = response.json()
    workflow = Workflow.objects.get(project=project)
    steps = list(workflow.steps.all())
    edges = list(workflow.transitions.order_by("created_at", "id"))
    assert body == {
        "id": str(workflow.id),
        "name": "Onboarding",
        "description": "Welcome flow",
        "enabled": False,
        "triggerType": "EVENT",
        "triggerConfig": {"eventName": "user.signup"},
        "allowReentry": False,
        "steps": [
            {"id": str(steps[0].id), "type": "TRIGGER", "name": "Trigger: user.signup",
             "position": {"x": 0, "y": 0}, "config": {"eventName": "user.signup"}},
            {"id": str(steps[1].id), **EMAIL, "position": {"x": 0, "y": 150}},
            {"id": str(steps[2].id), **DELAY, "position": {"x": 0, "y": 300}},
            {"id": str(steps[3].id), **WAIT, "position": {"x": 0, "y": 450}},
        ],
        "transitions": [
            {"id": str(edge.id), "fromStepId": str(steps[i].id), "toStepId": str(steps[i + 1].id),
             "condition": None, "waitOutcome": None, "priority": 0,
             "createdAt": iso_timestamp(edge.created_at)}
            for i, edge in enumerate(edges)
        ],
        "createdAt": body["createdAt"],
        "updatedAt": body["updatedAt"],
    }  # fmt: skip
    assert len(edges) == 3
    assert ISO_MS.match(body["createdAt"]) and ISO_MS.match(body["updatedAt"])
    assert [s.order for s in steps] == [0, 1, 2, 3]
    assert all(s.project_id == project.id for s in steps + edges)


def test_create_minimal_and_flags(sk):
    body = create(sk, enabled=True, allowReentry=True).json()
    assert body["enabled"] is True
    assert body["allowReentry"] is True
    assert body["description"] is None
    assert public_steps(body) == [
        {"type": "TRIGGER", "name": "Trigger: signup", "config": {"eventName": "signup"}}
    ]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"eventName": "x", "name": None}, [("name", "invalid_type", "This field may not be null.")]),
        ({"name": "", }, [("name", "too_small", "This field may not be blank.")]),
        ({"name": "n" * 101}, [("name", "too_big", "Ensure this field has no more than 100 characters.")]),
        ({"eventName": "   "}, [("eventName", "too_small", "This field may not be blank.")]),
        ({"eventName": ""}, [("eventName", "too_small", "This field may not be blank.")]),
        ({"eventName": 7}, [("eventName", "invalid_type", "Not a valid string.")]),
        ({"eventName": "e" * 256}, [("eventName", "too_big", "Ensure this field has no more than 255 characters.")]),
        ({"enabled": "true"}, [("enabled", "invalid_type", "Must be a valid boolean.")]),
        ({"allowReentry": 1}, [("allowReentry", "invalid_type", "Must be a valid boolean.")]),
        ({"description": "d" * 501}, [("description", "too_big", "Ensure this field has no more than 500 characters.")]),
        ({"steps": {"type": "EXIT"}}, [("steps", "invalid_type", 'Expected a list of items but got type "dict".')]),
        ({"steps": [EMAIL, {"type": "TELEPORT", "name": "t"}]}, [("steps.1.type", "invalid_enum_value", '"TELEPORT" is not a valid choice.')]),
        ({"steps": [{"type": "EXIT"}]}, [("steps.0.name", "invalid_type", "Required")]),
        ({"steps": [{"type": "EXIT", "name": "x", "config": []}]}, [("steps.0.config", "invalid_type", 'Expected a dictionary of items but got type "list".')]),
        ({"steps": [{"type": "TRIGGER", "name": "t", "config": {"eventName": "x"}}]}, [("steps.0.type", "custom", "The TRIGGER step is created from eventName; send only the steps after it")]),
        ({"steps": [EMAIL, {"type": "WAIT_FOR_EVENT", "name": "w", "config": {}}]}, [("steps.1.config.eventName", "invalid_type", "Required", "undefined")]),
        ({"steps": [{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": " "}}]}, [("steps.0.config.eventName", "too_small", "String must contain at least 1 character(s)")]),
        ({"steps": [{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": 3}}]}, [("steps.0.config.eventName", "invalid_type", "Expected string, received number", "number")]),
        ({"steps": [{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "p", "timeout": 31536001}}]}, [("steps.0.config.timeout", "too_big", "Timeout must be between 1 and 31536000 seconds")]),
        ({"steps": [{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "p", "timeout": 0}}]}, [("steps.0.config.timeout", "too_small", "Timeout must be between 1 and 31536000 seconds")]),
        ({"steps": [{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "p", "timeout": "1h"}}]}, [("steps.0.config.timeout", "invalid_type", "Expected integer, received string", "string")]),
        ({"steps": [{"type": "DELAY", "name": "d", "config": {"amount": 366, "unit": "days"}}]}, [("steps.0.config.amount", "too_big", "Delay must be at most 365 days")]),
        ({"steps": [{"type": "DELAY", "name": "d", "config": {"amount": 8761, "unit": "hours"}}]}, [("steps.0.config.amount", "too_big", "Delay must be at most 365 days")]),
        ({"steps": [{"type": "DELAY", "name": "d", "config": {"amount": 0, "unit": "days"}}]}, [("steps.0.config.amount", "too_small", "Number must be greater than 0")]),
        ({"steps": [{"type": "DELAY", "name": "d", "config": {"unit": "days"}}]}, [("steps.0.config.amount", "invalid_type", "Required", "undefined")]),
        ({"steps": [{"type": "DELAY", "name": "d", "config": {"amount": 1, "unit": "weeks"}}]}, [("steps.0.config.unit", "invalid_enum_value", "Invalid enum value. Expected 'minutes' | 'hours' | 'days', received 'weeks'")]),
    ],
)  # fmt: skip
def test_create_validation_errors(sk, project, body, errors):
    assert_field_errors(create(sk, **body), errors)
    assert not Workflow.objects.filter(project=project).exists()
    assert not WorkflowStep.objects.filter(project=project).exists()


def test_limits_that_are_allowed(sk):
    steps = [
        {"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": " paid ", "timeout": 31536000}},
        {"type": "DELAY", "name": "d", "config": {"amount": 365, "unit": "days"}},
        {"type": "DELAY", "name": "m", "config": {"amount": 90, "unit": "minutes"}},
        {"type": "EXIT", "name": "done"},
    ]  # fmt: skip
    body = create(sk, steps=steps).json()
    assert [s["config"] for s in body["steps"][1:]] == [
        {"eventName": "paid", "timeout": 31536000},
        {"amount": 365, "unit": "days"},
        {"amount": 90, "unit": "minutes"},
        {},
    ]


def test_a_255_character_event_name_fits_the_trigger_step(sk):
    name = "e" * 255
    body = create(sk, eventName=name).json()
    assert body["triggerConfig"] == {"eventName": name}
    assert body["steps"][0]["name"] == f"Trigger: {name}"[:100]
    assert body["steps"][0]["config"] == {"eventName": name}


def test_event_name_is_required_on_create(sk):
    response = sk.post("/workflows", {"name": "n"}, format="json")
    assert_field_errors(response, [("eventName", "invalid_type", "Required")])


# ---------------------------------------------------------------------------------------------
# Read, page, patch, delete


def test_get_one(sk):
    created = create(sk, steps=[WAIT]).json()
    assert sk.get(f"/workflows/{created['id']}").json() == created


def test_list_pages(sk, other_project, client_for):
    create(client_for(other_project.secret_key), name="theirs")
    for i in range(5):
        create(sk, name=f"w{i}", steps=[WAIT])
    page = sk.get("/workflows", {"page": 1, "pageSize": 2}).json()
    assert set(page) == {"data", "total", "page", "pageSize", "totalPages"}
    assert [w["name"] for w in page["data"]] == ["w4", "w3"]
    assert (page["total"], page["page"], page["pageSize"], page["totalPages"]) == (5, 1, 2, 3)
    assert [s["type"] for s in page["data"][0]["steps"]] == ["TRIGGER", "WAIT_FOR_EVENT"]
    page3 = sk.get("/workflows", {"page": 3, "pageSize": 2}).json()
    assert [w["name"] for w in page3["data"]] == ["w0"]
    beyond = sk.get("/workflows", {"page": 9, "pageSize": 2}).json()
    assert beyond == {"data": [], "total": 5, "page": 9, "pageSize": 2, "totalPages": 3}


def test_list_defaults_and_caps(sk, project):
    Workflow.objects.bulk_create(Workflow(project=project, name=f"b{i}") for i in range(101))
    page = sk.get("/workflows").json()
    assert (len(page["data"]), page["page"], page["pageSize"], page["totalPages"]) == (20, 1, 20, 6)
    page = sk.get("/workflows", {"page": "x", "pageSize": 500}).json()
    assert (len(page["data"]), page["page"], page["pageSize"], page["totalPages"]) == (
        100,
        1,
        100,
        2,
    )
    page = sk.get("/workflows", {"page": -1, "pageSize": 0}).json()
    assert (page["page"], page["pageSize"]) == (1, 20)


def test_empty_list(sk):
    assert sk.get("/workflows").json() == {
        "data": [], "total": 0, "page": 1, "pageSize": 20, "totalPages": 0,
    }  # fmt: skip


def test_patch_fields_event_name_and_steps(sk):
    created = create(sk, steps=[EMAIL, WAIT]).json()
    trigger_id = created["steps"][0]["id"]
    url = f"/workflows/{created['id']}"

    body = sk.patch(
        url, {"enabled": True, "description": "d", "name": "Renamed"}, format="json"
    ).json()
    assert (body["enabled"], body["description"], body["name"]) == (True, "d", "Renamed")
    assert body["steps"] == created["steps"]

    body = sk.patch(url, {"eventName": " signed_up "}, format="json").json()
    assert body["triggerConfig"] == {"eventName": "signed_up"}
    assert body["steps"][0] == {
        "id": trigger_id, "type": "TRIGGER", "name": "Trigger: signed_up",
        "position": {"x": 0, "y": 0}, "config": {"eventName": "signed_up"},
    }  # fmt: skip
    assert body["steps"][1:] == created["steps"][1:]
    assert body["transitions"] == created["transitions"]

    body = sk.patch(url, {"steps": [DELAY]}, format="json").json()
    assert public_steps(body) == [
        {"type": "TRIGGER", "name": "Trigger: signed_up", "config": {"eventName": "signed_up"}},
        DELAY,
    ]
    assert body["steps"][0]["id"] == trigger_id
    assert chain(body) == [(0, 1, None, None)]
    assert sk.get(url).json() == body

    timed_wait = {**WAIT, "config": {"eventName": "paid", "timeout": 9}}
    body = sk.patch(url, {"steps": [timed_wait, DELAY]}, format="json").json()
    assert chain(body) == [
        (0, 1, None, None),
        (1, 2, None, "EVENT"),
        (1, 2, None, "TIMEOUT"),
    ]

    body = sk.patch(url, {"steps": []}, format="json").json()
    assert [s["type"] for s in body["steps"]] == ["TRIGGER"]
    assert body["transitions"] == []


def test_patch_validation_error_changes_nothing(sk):
    created = create(sk, steps=[WAIT]).json()
    url = f"/workflows/{created['id']}"
    response = sk.patch(
        url,
        {"name": "New", "steps": [{"type": "DELAY", "name": "d", "config": {"amount": 999, "unit": "days"}}]},
        format="json",
    )  # fmt: skip
    assert_field_errors(
        response, [("steps.0.config.amount", "too_big", "Delay must be at most 365 days")]
    )
    assert_field_errors(
        sk.patch(url, {"eventName": "  "}, format="json"),
        [("eventName", "too_small", "This field may not be blank.")],
    )
    assert sk.get(url).json() == created


def test_delete(sk, project):
    created = create(sk, steps=[WAIT]).json()
    response = sk.delete(f"/workflows/{created['id']}")
    assert response.status_code == 204
    assert not Workflow.objects.filter(project=project).exists()
    assert not WorkflowStep.objects.filter(project=project).exists()


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_projects_workflow_is_404(method, sk, other_project, client_for):
    other = client_for(other_project.secret_key)
    theirs = create(other).json()
    response = getattr(sk, method)(f"/workflows/{theirs['id']}", {"name": "x"}, format="json")
    assert_not_found(response, "Workflow", theirs["id"])
    assert other.get(f"/workflows/{theirs['id']}").json()["name"] == "Onboarding"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("bad_id", ["wf_1", "12", str(uuid.UUID(int=7))])
def test_non_uuid_or_unknown_id_is_404(method, bad_id, sk):
    response = getattr(sk, method)(f"/workflows/{bad_id}", {}, format="json")
    assert_not_found(response, "Workflow", bad_id)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "/{id}"), ("patch", "/{id}"), ("delete", "/{id}")],
)
def test_public_key_is_refused(method, path, sk, pk, project):
    created = create(sk).json()
    url = "/workflows" + path.format(id=created["id"])
    body = {"name": "x", "eventName": "y"}
    assert_secret_key_required(getattr(pk, method)(url, body, format="json"))
    assert Workflow.objects.get(project=project).name == "Onboarding"


# ---------------------------------------------------------------------------------------------
# The delete guard of DELETE /events/<name>


def track(sk, event):
    response = sk.post("/v1/track", {"email": "g@example.com", "event": event}, format="json")
    assert response.status_code == 200


def test_a_disabled_workflow_waiting_for_an_event_blocks_its_deletion(sk):
    track(sk, "invoice.paid")
    workflow = create(
        sk,
        name="Dunning",
        eventName="invoice.created",
        enabled=False,
        steps=[{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "invoice.paid"}}],
    ).json()

    assert_error(
        sk.delete("/events/invoice.paid"),
        400,
        "CONFLICT",
        "Cannot delete event: used in 0 segment(s) and 1 workflow(s)",
        details={
            "usedInSegments": [],
            "usedInWorkflows": [{"id": workflow["id"], "name": "Dunning"}],
        },
    )
    usage = sk.get("/events/invoice.paid/usage").json()
    assert usage["canDelete"] is False

    assert sk.delete(f"/workflows/{workflow['id']}").status_code == 204
    assert sk.delete("/events/invoice.paid").json() == {"deletedCount": 1}


def test_the_trigger_event_blocks_until_the_workflow_is_repointed(sk):
    track(sk, "signup")
    workflow = create(sk, eventName="signup").json()
    assert_error(
        sk.delete("/events/signup"),
        400,
        "CONFLICT",
        "Cannot delete event: used in 0 segment(s) and 1 workflow(s)",
        details={
            "usedInSegments": [],
            "usedInWorkflows": [{"id": workflow["id"], "name": "Onboarding"}],
        },
    )
    sk.patch(f"/workflows/{workflow['id']}", {"eventName": "registered"}, format="json")
    assert sk.delete("/events/signup").json() == {"deletedCount": 1}


def test_replacing_the_wait_step_unblocks_deletion(sk):
    track(sk, "paid")
    workflow = create(sk, steps=[WAIT]).json()
    assert sk.delete("/events/paid").status_code == 400
    sk.patch(f"/workflows/{workflow['id']}", {"steps": [EMAIL]}, format="json")
    assert sk.delete("/events/paid").json() == {"deletedCount": 1}


def test_names_being_deleted_cannot_be_referenced(sk, project):
    """A deletion job that is still running refuses new references (409), segment or workflow."""
    track(sk, "old")
    job = deletion.start_deletion(project, "old")  # recorded, batches not run yet, worker alive
    running = {
        "eventNames": ["old"],
        "deletions": [
            {
                "eventName": "old",
                "status": "RUNNING",
                "deleted": 0,
                "startedAt": iso_timestamp(job.created_at),
            }
        ],
    }

    def assert_refused(response):
        message = 'Event "old" is being deleted and cannot be referenced'
        assert_error(response, 409, "CONFLICT", message, details=running)

    assert_refused(create(sk, eventName="old"))
    response = create(
        sk, steps=[{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "old"}}]
    )
    assert_refused(response)
    condition = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "event.old", "operator": "triggered"}]}],
    }
    assert_refused(sk.post("/segments", {"name": "s", "condition": condition}, format="json"))
    assert not Workflow.objects.filter(project=project).exists()

    workflow = create(sk, eventName="fresh").json()
    assert_refused(sk.patch(f"/workflows/{workflow['id']}", {"eventName": "old"}, format="json"))
    assert sk.get(f"/workflows/{workflow['id']}").json()["triggerConfig"] == {"eventName": "fresh"}

    # Its worker dies (the lease runs out): the next DELETE takes the job over and finishes it.
    project.eventdeletion_set.update(lease_expires_at=project.created_at)
    assert sk.delete("/events/old").json() == {"deletedCount": 1}
    assert create(sk, name="again", eventName="old").status_code == 201
