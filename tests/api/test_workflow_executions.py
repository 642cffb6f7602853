"""``/workflows/<id>/executions``: start by hand, list, read, cancel one or all, with whole
envelopes for every refusal."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from plunk_events.api.formatting import iso_timestamp
from plunk_events.models import Contact, WorkflowExecution, WorkflowStep, WorkflowStepExecution

from .helpers import (
    TIMESTAMP,
    assert_error,
    assert_field_errors,
    assert_not_found,
    assert_secret_key_required,
)

pytestmark = pytest.mark.django_db

WAIT = {"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "project.created"}}


@pytest.fixture
def workflow(sk):
    body = {"name": "Welcome", "eventName": "signed_up", "enabled": True, "steps": [WAIT]}
    response = sk.post("/workflows", body, format="json")
    assert response.status_code == 201
    return response.json()


@pytest.fixture
def contact(project):
    return Contact.objects.create(project=project, email="ada@example.com")


def url(workflow, *parts) -> str:
    return "/".join([f"/workflows/{workflow['id']}/executions", *parts])


def start(sk, workflow, contact, **body):
    return sk.post(url(workflow), {"contactId": str(contact.pk), **body}, format="json")


def execution_json(run: WorkflowExecution) -> dict:
    step = run.current_step
    return {
        "id": str(run.id),
        "workflowId": str(run.workflow_id),
        "contactId": str(run.contact_id),
        "status": run.status,
        "currentStepId": str(step.id) if step else None,
        "exitReason": run.exit_reason,
        "context": run.context,
        "sourceEventId": None,
        "startedAt": iso_timestamp(run.started_at),
        "completedAt": iso_timestamp(run.completed_at) if run.completed_at else None,
        "updatedAt": iso_timestamp(run.updated_at),
        "contact": {"id": str(run.contact_id), "email": run.contact.email},
        "currentStep": {"id": str(step.id), "name": step.name, "type": step.type} if step else None,
    }


def test_start_an_execution(sk, workflow, contact):
    response = start(sk, workflow, contact, context={"plan": "pro"})
    assert response.status_code == 201
    run = WorkflowExecution.objects.get()
    assert response.json() == execution_json(run)
    assert (run.status, run.current_step.type, run.context) == (
        "RUNNING",
        "TRIGGER",
        {"plan": "pro"},
    )
    assert TIMESTAMP.match(response.json()["startedAt"])


def test_start_refusals(sk, workflow, contact, other_project):
    start(sk, workflow, contact)
    run = WorkflowExecution.objects.get()
    assert_error(
        start(sk, workflow, contact),
        409,
        "ALREADY_ENROLLED",
        f"Workflow is already running for this contact (execution {run.pk}, RUNNING)",
        details={"executionId": str(run.pk), "status": "RUNNING"},
    )
    stranger = Contact.objects.create(project=other_project, email="eve@example.com")
    assert_not_found(start(sk, workflow, stranger), "Contact", str(stranger.pk))
    assert_field_errors(
        sk.post(url(workflow), {"contactId": "ada"}, format="json"),
        [("contactId", "invalid_type", "Must be a valid UUID.")],
    )
    assert_field_errors(
        start(sk, workflow, contact, context=[1]),
        [("context", "invalid_type", 'Expected a dictionary of items but got type "list".')],
    )
    sk.patch(f"/workflows/{workflow['id']}", {"enabled": False}, format="json")
    assert_error(
        start(sk, workflow, contact),
        409,
        "WORKFLOW_DISABLED",
        "Workflow is not enabled: enable it to start executions",
    )
    missing = str(uuid.uuid4())
    response = sk.post(f"/workflows/{missing}/executions", {"contactId": str(contact.pk)}, format="json")  # fmt: skip
    assert_not_found(response, "Workflow", missing)
    assert WorkflowExecution.objects.count() == 1


def test_list_executions(sk, project, workflow):
    people = [Contact.objects.create(project=project, email=f"p{i}@x.io") for i in range(3)]
    sk.patch(f"/workflows/{workflow['id']}", {"allowReentry": True}, format="json")
    for person in people:
        assert start(sk, workflow, person).status_code == 201
    runs = list(WorkflowExecution.objects.order_by("started_at"))
    base = timezone.now() - timedelta(hours=1)
    for minutes, run in enumerate(runs):
        WorkflowExecution.objects.filter(pk=run.pk).update(
            started_at=base + timedelta(minutes=minutes)
        )
    WorkflowExecution.objects.filter(pk=runs[0].pk).update(status="COMPLETED", current_step=None)
    body = sk.get(url(workflow), {"pageSize": 2}).json()
    assert set(body) == {"executions", "total", "page", "pageSize", "totalPages"}
    assert [e["contact"]["email"] for e in body["executions"]] == ["p2@x.io", "p1@x.io"]
    assert (body["total"], body["page"], body["pageSize"], body["totalPages"]) == (3, 1, 2, 2)
    assert body["executions"][0] == execution_json(WorkflowExecution.objects.get(pk=runs[2].pk))
    done = sk.get(url(workflow), {"status": "COMPLETED"}).json()
    assert [e["id"] for e in done["executions"]] == [str(runs[0].pk)]
    assert done["executions"][0]["currentStep"] is None
    assert sk.get(url(workflow), {"status": ""}).json()["total"] == 3
    assert_field_errors(
        sk.get(url(workflow), {"status": "done"}),
        [("status", "invalid_enum_value", "Invalid enum value. Expected 'RUNNING' | 'WAITING' | 'COMPLETED' | 'EXITED' | 'FAILED' | 'CANCELLED', received 'done'")],
    )  # fmt: skip
    page = sk.get(url(workflow), {"page": "x", "pageSize": 1000}).json()
    assert (page["page"], page["pageSize"]) == (1, 100)


def test_get_an_execution_with_its_steps(sk, project, workflow, contact):
    start(sk, workflow, contact)
    run = WorkflowExecution.objects.get()
    trigger, wait = WorkflowStep.objects.filter(workflow_id=workflow["id"]).order_by("order")
    now = timezone.now()
    done = WorkflowStepExecution.objects.create(
        project=project, execution=run, step=trigger, contact=contact, status="COMPLETED",
        output={"triggered": True}, started_at=now, completed_at=now, created_at=now,
    )  # fmt: skip
    waiting = WorkflowStepExecution.objects.create(
        project=project, execution=run, step=wait, contact=contact, status="WAITING",
        execute_after=now + timedelta(days=3), created_at=now + timedelta(seconds=1),
    )  # fmt: skip
    body = sk.get(url(workflow, str(run.pk))).json()
    assert body == {
        **execution_json(run),
        "stepExecutions": [
            {"id": str(done.id), "stepId": str(trigger.id), "status": "COMPLETED",
             "output": {"triggered": True}, "error": None, "executeAfter": None,
             "startedAt": iso_timestamp(now), "completedAt": iso_timestamp(now),
             "createdAt": iso_timestamp(now),
             "step": {"id": str(trigger.id), "name": "Trigger: signed_up", "type": "TRIGGER"}},
            {"id": str(waiting.id), "stepId": str(wait.id), "status": "WAITING", "output": None,
             "error": None, "executeAfter": iso_timestamp(now + timedelta(days=3)),
             "startedAt": None, "completedAt": None,
             "createdAt": iso_timestamp(now + timedelta(seconds=1)),
             "step": {"id": str(wait.id), "name": "Wait", "type": "WAIT_FOR_EVENT"}},
        ],
    }  # fmt: skip
    for missing in (str(uuid.uuid4()), "nope"):
        assert_not_found(sk.get(url(workflow, missing)), "WorkflowExecution", missing)


def test_cancel_one_then_all(sk, project, workflow, contact):
    start(sk, workflow, contact)
    run = WorkflowExecution.objects.get()
    response = sk.delete(url(workflow, str(run.pk)))
    assert response.status_code == 200
    run.refresh_from_db()
    assert (run.status, run.exit_reason) == ("CANCELLED", "Cancelled by user")
    assert response.json() == {**execution_json(run), "stepExecutions": []}
    assert sk.delete(url(workflow, str(run.pk))).json() == response.json()

    others = [Contact.objects.create(project=project, email=f"p{i}@x.io") for i in range(2)]
    for person in others:
        start(sk, workflow, person)
    finished = WorkflowExecution.objects.get(contact=others[0])
    WorkflowExecution.objects.filter(pk=finished.pk).update(status="COMPLETED")
    assert_error(
        sk.delete(url(workflow, str(finished.pk))),
        409,
        "EXECUTION_FINISHED",
        "Execution is COMPLETED: only RUNNING and WAITING executions can be cancelled",
        details={"status": "COMPLETED"},
    )
    response = sk.post(url(workflow, "cancel-all"))
    assert response.json() == {"cancelled": 1}
    assert WorkflowExecution.objects.get(contact=others[1]).exit_reason == (
        "Cancelled by user (bulk cancel)"
    )
    assert sk.post(url(workflow, "cancel-all")).json() == {"cancelled": 0}
    assert sk.get(url(workflow, "cancel-all")).status_code == 405


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "{run}"), ("delete", "{run}"), ("post", "cancel-all")],
)
def test_public_key_is_refused(sk, pk, workflow, contact, method, path):
    start(sk, workflow, contact)
    run = WorkflowExecution.objects.get()
    target = url(workflow, path.format(run=run.pk)) if path else url(workflow)
    assert_secret_key_required(
        getattr(pk, method)(target, {"contactId": str(contact.pk)}, format="json")
    )
    run.refresh_from_db()
    assert run.status == "RUNNING" and WorkflowExecution.objects.count() == 1
