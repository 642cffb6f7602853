"""``/workflows/<id>/steps``, ``/transitions``, ``/duplicate``: editing a workflow's graph over
HTTP, with whole envelopes for every refusal (422 naming the field, 404, 409)."""

from __future__ import annotations

import uuid

import pytest

from plunk_events.api.formatting import iso_timestamp
from plunk_events.models import (
    Contact,
    Workflow,
    WorkflowExecution,
    WorkflowStep,
    WorkflowTransition,
)
from plunk_events.services import executions

from .helpers import assert_error, assert_field_errors, assert_not_found, assert_secret_key_required

pytestmark = pytest.mark.django_db

WAIT = {"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "paid", "timeout": 60}}
DELAY = {"type": "DELAY", "name": "Delay", "config": {"amount": 1, "unit": "days"}}
CONDITION = {
    "type": "CONDITION",
    "name": "Pro?",
    "config": {"field": "data.plan", "operator": "equals", "value": "pro"},
}
EXIT = {"type": "EXIT", "name": "Done", "config": {}}


@pytest.fixture
def workflow(sk):
    response = sk.post(
        "/workflows", {"name": "Onboarding", "eventName": "signup", "steps": [DELAY]}, format="json"
    )
    assert response.status_code == 201
    return response.json()


def url(workflow, *parts) -> str:
    return "/".join([f"/workflows/{workflow['id']}", *parts])


def graph(sk, workflow) -> tuple[dict, list[tuple]]:
    """Steps by name, and transitions as (from name, to name, branch, outcome)."""
    body = sk.get(url(workflow)).json()
    names = {step["id"]: step["name"] for step in body["steps"]}
    edges = [
        (
            names[t["fromStepId"]],
            names[t["toStepId"]],
            (t["condition"] or {}).get("branch"),
            t["waitOutcome"],
        )
        for t in body["transitions"]
    ]
    return {step["name"]: step for step in body["steps"]}, edges


def active_run(project, workflow, step_name):
    contact = Contact.objects.create(project=project, email=f"{uuid.uuid4().hex}@x.io")
    execution_id = executions.enroll(Workflow.objects.get(pk=workflow["id"]), contact.pk)
    step = WorkflowStep.objects.get(workflow_id=workflow["id"], name=step_name)
    WorkflowExecution.objects.filter(pk=execution_id).update(current_step=step, status="WAITING")


def active_executions_error(response, message, count=1):
    assert_error(response, 409, "ACTIVE_EXECUTIONS", message, details={"activeExecutions": count})


# ---------------------------------------------------------------------------------------------
# Steps


def test_add_step_connects_it_after_the_newest_leaf(sk, workflow):
    response = sk.post(
        url(workflow, "steps"), {**WAIT, "position": {"x": 40, "y": 80}}, format="json"
    )
    assert response.status_code == 201
    step = WorkflowStep.objects.get(name="Wait")
    assert response.json() == {
        "id": str(step.id),
        "type": "WAIT_FOR_EVENT",
        "name": "Wait",
        "position": {"x": 40, "y": 80},
        "config": {"eventName": "paid", "timeout": 60},
    }
    sk.post(url(workflow, "steps"), EXIT, format="json")
    lonely = sk.post(url(workflow, "steps"), {**DELAY, "name": "Lonely", "autoConnect": False}, format="json")  # fmt: skip
    assert (
        lonely.json()["position"] == {"x": 0, "y": 0} and lonely.json()["config"] == DELAY["config"]
    )
    _, edges = graph(sk, workflow)
    assert edges == [
        ("Trigger: signup", "Delay", None, None),
        ("Delay", "Wait", None, None),
        ("Wait", "Done", None, "EVENT"),
        ("Wait", "Done", None, "TIMEOUT"),
    ]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"type": "TRIGGER", "name": "t", "config": {}}, [("type", "invalid_enum_value", '"TRIGGER" is not a valid choice.')]),
        ({"name": "t"}, [("type", "invalid_type", "Required")]),
        ({"type": "EXIT", "name": ""}, [("name", "too_small", "This field may not be blank.")]),
        ({"type": "EXIT", "name": "e", "autoConnect": "no"}, [("autoConnect", "invalid_type", "Must be a valid boolean.")]),
        ({"type": "DELAY", "name": "d", "config": {"amount": 2, "unit": "weeks"}}, [("config.unit", "invalid_enum_value", "Invalid enum value. Expected 'minutes' | 'hours' | 'days', received 'weeks'")]),
        ({"type": "WEBHOOK", "name": "h", "config": {"url": "mailto:a@b.c"}}, [("config.url", "invalid_string", "Invalid url: an http:// or https:// URL")]),
        ({"type": "EXIT", "name": "e", "position": {"x": 1}}, [("position.y", "invalid_type", "Required", "undefined")]),
    ],
)  # fmt: skip
def test_add_step_validation(sk, workflow, body, errors):
    assert_field_errors(sk.post(url(workflow, "steps"), body, format="json"), errors)
    assert WorkflowStep.objects.count() == 2


def test_patch_step(sk, workflow):
    steps, _ = graph(sk, workflow)
    step_url = url(workflow, "steps", steps["Delay"]["id"])
    body = {"name": "Two days", "position": {"x": 1.5, "y": -2}, "config": {"amount": 2, "unit": "days"}}  # fmt: skip
    response = sk.patch(step_url, body, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": steps["Delay"]["id"], "type": "DELAY", **body}
    assert_field_errors(
        sk.patch(step_url, {"config": {"amount": 0, "unit": "days"}}, format="json"),
        [("config.amount", "too_small", "Number must be greater than 0")],
    )
    assert_field_errors(
        sk.patch(url(workflow, "steps", steps["Trigger: signup"]["id"]), {"config": {}}, format="json"),
        [("config", "custom", "The TRIGGER step's config follows the workflow's eventName: change that")],
    )  # fmt: skip
    assert sk.get(url(workflow)).json()["steps"][1] == response.json()


def test_a_config_change_is_refused_while_enabled_with_active_executions(sk, project, workflow):
    sk.patch(url(workflow), {"enabled": True}, format="json")
    active_run(project, workflow, "Delay")
    steps, _ = graph(sk, workflow)
    step_url = url(workflow, "steps", steps["Delay"]["id"])
    active_executions_error(
        sk.patch(step_url, {"config": {"amount": 3, "unit": "days"}}, format="json"),
        "Cannot change the step's config while the enabled workflow has 1 active execution(s). "
        "Disable it first or wait for them to complete; the name and position can still change.",
    )
    assert sk.patch(step_url, {"name": "Later"}, format="json").status_code == 200


def test_delete_step_and_splice(sk, project, workflow):
    for step in (WAIT, EXIT):
        sk.post(url(workflow, "steps"), step, format="json")
    steps, _ = graph(sk, workflow)
    response = sk.delete(url(workflow, "steps", steps["Delay"]["id"]) + "?splice=true")
    assert response.status_code == 204
    assert graph(sk, workflow)[1] == [
        ("Trigger: signup", "Wait", None, None),
        ("Wait", "Done", None, "EVENT"),
        ("Wait", "Done", None, "TIMEOUT"),
    ]
    assert_field_errors(
        sk.delete(url(workflow, "steps", steps["Wait"]["id"]) + "?splice=true"),
        [("splice", "custom", "A WAIT_FOR_EVENT step leads to several steps, so it cannot be spliced out: delete it with the steps after it, or rewire its transitions first")],
    )  # fmt: skip
    assert_field_errors(
        sk.delete(url(workflow, "steps", steps["Trigger: signup"]["id"])),
        [("stepId", "custom", "The TRIGGER step cannot be deleted")],
    )
    active_run(project, workflow, "Done")
    active_executions_error(
        sk.delete(url(workflow, "steps", steps["Wait"]["id"])),
        'Cannot delete step "Wait": 1 active execution(s) are on it or on a step after it. '
        "Wait for them to complete or cancel them first.",
    )
    WorkflowExecution.objects.update(status="COMPLETED")
    assert sk.delete(url(workflow, "steps", steps["Wait"]["id"])).status_code == 204
    assert list(graph(sk, workflow)[0]) == ["Trigger: signup"]


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_steps_of_other_workflows_are_404(sk, workflow, method):
    other = sk.post("/workflows", {"name": "Other", "eventName": "x"}, format="json").json()
    foreign = other["steps"][0]["id"]
    response = getattr(sk, method)(url(workflow, "steps", foreign), {"name": "n"}, format="json")
    assert_not_found(response, "WorkflowStep", foreign)
    response = getattr(sk, method)(url(workflow, "steps", "nope"), {"name": "n"}, format="json")
    assert_not_found(response, "WorkflowStep", "nope")


# ---------------------------------------------------------------------------------------------
# Transitions


def test_create_and_delete_transitions(sk, workflow):
    condition = sk.post(url(workflow, "steps"), CONDITION, format="json").json()
    done = sk.post(url(workflow, "steps"), EXIT, format="json").json()  # by the yes branch
    body = {"fromStepId": condition["id"], "toStepId": done["id"], "condition": {"branch": "no"}, "priority": 2}  # fmt: skip
    response = sk.post(url(workflow, "transitions"), body, format="json")
    assert response.status_code == 201
    edge = WorkflowTransition.objects.get(condition__branch="no")
    assert response.json() == {
        "id": str(edge.id),
        **body,
        "waitOutcome": None,
        "createdAt": iso_timestamp(edge.created_at),
    }
    assert_field_errors(
        sk.post(url(workflow, "transitions"), body, format="json"),
        [
            (
                "condition.branch",
                "custom",
                'A transition for the "no" branch already leaves this step',
            )
        ],
    )
    assert sk.delete(url(workflow, "transitions", str(edge.id))).status_code == 204
    assert_not_found(sk.delete(url(workflow, "transitions", str(edge.id))), "WorkflowTransition", str(edge.id))  # fmt: skip


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, [("fromStepId", "invalid_type", "Required"), ("toStepId", "invalid_type", "Required")]),
        ({"fromStepId": "x", "toStepId": "{done}"}, [("fromStepId", "invalid_type", "Must be a valid UUID.")]),
        ({"fromStepId": "{done}", "toStepId": "{done}"}, [("toStepId", "custom", "A step cannot lead to itself")]),
        ({"fromStepId": "{done}", "toStepId": "{delay}"}, [("fromStepId", "custom", "An EXIT step ends the flow: it cannot lead to another step")]),
        ({"fromStepId": "{delay}", "toStepId": "{trigger}"}, [("toStepId", "custom", "No step can lead to the TRIGGER step"), ("fromStepId", "custom", '"Delay" already leads to another step: delete that transition first, or branch with a CONDITION step')]),
        ({"fromStepId": "{wait}", "toStepId": "{done}"}, [("waitOutcome", "invalid_type", "Required: EVENT or TIMEOUT")]),
        ({"fromStepId": "{wait}", "toStepId": "{done}", "waitOutcome": "SOON"}, [("waitOutcome", "invalid_enum_value", '"SOON" is not a valid choice.')]),
        ({"fromStepId": "{wait}", "toStepId": "{done}", "waitOutcome": "EVENT", "priority": "1"}, [("priority", "invalid_type", "A valid integer is required.")]),
        ({"fromStepId": "{wait}", "toStepId": "{done}", "waitOutcome": "EVENT", "priority": -1}, [("priority", "too_small", "Ensure this value is greater than or equal to 0.")]),
        ({"fromStepId": "{wait}", "toStepId": "{delay}", "waitOutcome": "EVENT"}, [("toStepId", "custom", "This transition would close a loop")]),
    ],
)  # fmt: skip
def test_transition_validation(sk, workflow, body, errors):
    sk.post(url(workflow, "steps"), WAIT, format="json")
    sk.post(url(workflow, "steps"), {**EXIT, "autoConnect": False}, format="json")
    steps, before = graph(sk, workflow)
    ids = {
        "{done}": steps["Done"]["id"],
        "{delay}": steps["Delay"]["id"],
        "{wait}": steps["Wait"]["id"],
        "{trigger}": steps["Trigger: signup"]["id"],
    }
    body = {key: ids.get(value, value) for key, value in body.items()}
    assert_field_errors(sk.post(url(workflow, "transitions"), body, format="json"), errors)
    assert graph(sk, workflow)[1] == before


def test_transition_between_unknown_steps_is_404(sk, workflow):
    steps, _ = graph(sk, workflow)
    missing = str(uuid.uuid4())
    body = {"fromStepId": steps["Delay"]["id"], "toStepId": missing}
    assert_not_found(sk.post(url(workflow, "transitions"), body, format="json"), "WorkflowStep", missing)  # fmt: skip


def test_deleting_a_transition_into_an_occupied_step_is_refused(sk, project, workflow):
    active_run(project, workflow, "Delay")
    edge = WorkflowTransition.objects.get(workflow_id=workflow["id"])
    active_executions_error(
        sk.delete(url(workflow, "transitions", str(edge.id))),
        "Cannot delete the transition: 1 active execution(s) are on its target or on a step "
        "after it. Wait for them to complete or cancel them first.",
    )


def test_insert_step(sk, workflow):
    edge = WorkflowTransition.objects.get(workflow_id=workflow["id"])
    response = sk.post(url(workflow, "transitions", str(edge.id), "insert-step"), CONDITION, format="json")  # fmt: skip
    assert response.status_code == 201
    assert response.json()["type"] == "CONDITION"
    assert graph(sk, workflow)[1] == [
        ("Trigger: signup", "Pro?", None, None),
        ("Pro?", "Delay", "yes", None),
    ]
    assert_field_errors(
        sk.post(url(workflow, "transitions", str(edge.id), "insert-step"), EXIT, format="json"),
        [("type", "invalid_enum_value", '"EXIT" is not a valid choice.')],
    )
    missing = str(uuid.uuid4())
    response = sk.post(url(workflow, "transitions", missing, "insert-step"), DELAY, format="json")
    assert_not_found(response, "WorkflowTransition", missing)


# ---------------------------------------------------------------------------------------------
# Workflow routes that follow the graph


def test_duplicate(sk, workflow):
    response = sk.post(url(workflow, "duplicate"))
    assert response.status_code == 201
    copy = response.json()
    assert (copy["name"], copy["enabled"]) == ("Onboarding (Copy)", False)
    assert [s["type"] for s in copy["steps"]] == ["TRIGGER", "DELAY"]
    assert {s["id"] for s in copy["steps"]}.isdisjoint({s["id"] for s in workflow["steps"]})
    assert graph(sk, copy)[1] == graph(sk, workflow)[1]
    missing = str(uuid.uuid4())
    assert_not_found(sk.post(f"/workflows/{missing}/duplicate"), "Workflow", missing)


def test_deleting_a_workflow_with_active_executions_is_refused(sk, project, workflow):
    active_run(project, workflow, "Delay")
    active_executions_error(
        sk.delete(url(workflow)),
        "Cannot delete workflow: it has 1 active execution(s). Wait for them to complete or "
        "cancel them first.",
    )
    WorkflowExecution.objects.update(status="CANCELLED")
    assert sk.delete(url(workflow)).status_code == 204


def test_patch_takes_plunks_trigger_config(sk, project, workflow):
    body = sk.patch(url(workflow), {"triggerConfig": {"eventName": " registered "}}, format="json").json()  # fmt: skip
    assert body["triggerConfig"] == {"eventName": "registered"}
    assert body["steps"][0]["name"] == "Trigger: registered"
    assert_field_errors(
        sk.patch(url(workflow), {"triggerConfig": {"eventName": "a"}, "eventName": "b"}, format="json"),
        [("triggerConfig.eventName", "custom", "Differs from eventName: send one of them")],
    )  # fmt: skip
    assert_field_errors(
        sk.patch(url(workflow), {"triggerConfig": {}}, format="json"),
        [("triggerConfig.eventName", "invalid_type", "Required", "undefined")],
    )
    sk.patch(url(workflow), {"enabled": True}, format="json")
    active_run(project, workflow, "Delay")
    active_executions_error(
        sk.patch(url(workflow), {"triggerConfig": {"eventName": "other"}}, format="json"),
        "Cannot change the trigger while the enabled workflow has 1 active execution(s). Disable "
        "it first or wait for them to complete; name, description and re-entry can still change.",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "duplicate"),
        ("post", "steps"),
        ("patch", "steps/{step}"),
        ("delete", "steps/{step}"),
        ("post", "transitions"),
        ("delete", "transitions/{transition}"),
        ("post", "transitions/{transition}/insert-step"),
    ],
)
def test_public_key_is_refused(pk, workflow, method, path):
    edge = WorkflowTransition.objects.get(workflow_id=workflow["id"])
    path = path.format(step=workflow["steps"][1]["id"], transition=edge.id)
    response = getattr(pk, method)(url(workflow, path), DELAY, format="json")
    assert_secret_key_required(response)
    assert WorkflowStep.objects.count() == 2
