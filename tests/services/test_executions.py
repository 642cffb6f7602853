"""Starting, listing, reading and cancelling workflow executions (services.executions): who may
enter a workflow is decided by unique constraints, so concurrent starts enrol a contact once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from plunk_events import workflows as python_api
from plunk_events.models import (
    Contact,
    WorkflowExecution,
    WorkflowStep,
    WorkflowStepExecution,
)
from plunk_events.services import executions, workflows
from plunk_events.services.errors import NotFound, ValidationFailed
from plunk_events.services.executions import ExecutionFinished, NotEnrolled, WorkflowDisabled
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

WAIT = {"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "project.created"}}


def make(project, *, steps=(WAIT,), **kwargs):
    kwargs.setdefault("name", "Welcome")
    kwargs.setdefault("event_name", "signed_up")
    kwargs.setdefault("enabled", True)
    return workflows.create_workflow(project, steps=list(steps), **kwargs)


@pytest.fixture
def contact(project):
    return Contact.objects.create(project=project, email="ada@example.com")


def finish(execution_id, status="COMPLETED"):
    WorkflowExecution.objects.filter(pk=execution_id).update(
        status=status, current_step=None, completed_at=timezone.now()
    )


# ---------------------------------------------------------------------------------------------
# enroll / start


def test_enroll_inserts_a_running_execution_at_the_trigger_step(project, contact):
    workflow = make(project)
    event_id = uuid.uuid4()
    execution_id = executions.enroll(
        workflow, contact.pk, context={"plan": "pro"}, source_event_id=event_id
    )
    run = WorkflowExecution.objects.get(pk=execution_id)
    trigger = WorkflowStep.objects.get(workflow=workflow, type="TRIGGER")
    assert (run.project_id, run.workflow_id, run.contact_id) == (
        project.pk,
        workflow.pk,
        contact.pk,
    )
    assert (run.status, run.current_step_id, run.context) == (
        "RUNNING",
        trigger.pk,
        {"plan": "pro"},
    )
    assert (run.source_event_id, run.enrollment_key) == (event_id, contact.pk)
    assert run.started_at == run.updated_at and run.completed_at is None
    assert run.exit_reason is None


def test_an_event_starts_one_execution_per_workflow(project, contact):
    first, second = make(project, allow_reentry=True), make(project, allow_reentry=True)
    event_id = uuid.uuid4()
    started = executions.enroll(first, contact.pk, source_event_id=event_id)
    finish(started)  # even once that run is over, the event never starts another
    assert executions.enroll(first, contact.pk, source_event_id=event_id) is None
    assert executions.enroll(second, contact.pk, source_event_id=event_id) is not None
    assert executions.enroll(first, contact.pk, source_event_id=uuid.uuid4()) is not None
    assert WorkflowExecution.objects.filter(workflow=first).count() == 2


def test_without_reentry_a_contact_enters_once_ever(project, contact, other_project):
    workflow = make(project)
    first = executions.enroll(workflow, contact.pk)
    assert executions.enroll(workflow, contact.pk) is None
    finish(first, "CANCELLED")
    assert executions.enroll(workflow, contact.pk) is None
    someone = Contact.objects.create(project=project, email="bob@example.com")
    assert executions.enroll(workflow, someone.pk) is not None


def test_with_reentry_one_active_execution_at_a_time(project, contact):
    workflow = make(project, allow_reentry=True)
    first = executions.enroll(workflow, contact.pk)
    assert WorkflowExecution.objects.get(pk=first).enrollment_key is None
    assert executions.enroll(workflow, contact.pk) is None  # RUNNING
    WorkflowExecution.objects.filter(pk=first).update(status="WAITING")
    assert executions.enroll(workflow, contact.pk) is None  # WAITING blocks too
    finish(first)
    second = executions.enroll(workflow, contact.pk)
    assert second is not None and second != first


def test_runs_from_before_reentry_was_turned_off_count(project, contact):
    workflow = make(project, allow_reentry=True)
    finish(executions.enroll(workflow, contact.pk))
    workflow = workflows.update_workflow(project, workflow.pk, allow_reentry=False)
    assert executions.enroll(workflow, contact.pk) is None


def test_a_workflow_without_a_trigger_step_enrols_nobody(project, contact):
    workflow = make(project)
    WorkflowStep.objects.filter(workflow=workflow, type="TRIGGER").delete()
    assert executions.enroll(workflow, contact.pk) is None
    with pytest.raises(executions.Conflict) as refused:
        executions.start_execution(project, workflow.pk, contact.pk)
    assert refused.value.code == "NO_TRIGGER_STEP"


def test_the_runtime_is_told_after_the_commit_once_per_run(
    project, contact, django_capture_on_commit_callbacks
):
    workflow = make(project)
    with django_capture_on_commit_callbacks() as callbacks:
        executions.enroll(workflow, contact.pk)
        executions.enroll(workflow, contact.pk)  # refused: no callback
    assert len(callbacks) == 1


def test_start_execution_checks_like_the_api(project, contact, other_project):
    workflow = make(project)
    run = executions.start_execution(project, workflow.pk, contact.pk, context={"a": 1})
    assert (run.status, run.context, run.source_event_id) == ("RUNNING", {"a": 1}, None)
    assert run.contact.email == "ada@example.com" and run.current_step.type == "TRIGGER"

    with pytest.raises(NotEnrolled) as refused:
        executions.start_execution(project, workflow.pk, contact.pk)
    assert refused.value.status_code == 409 and refused.value.code == "ALREADY_ENROLLED"
    assert refused.value.message == (
        f"Workflow is already running for this contact (execution {run.pk}, RUNNING)"
    )
    finish(run.pk)
    with pytest.raises(NotEnrolled) as refused:
        executions.start_execution(project, workflow.pk, contact.pk)
    assert refused.value.message == (
        "Workflow does not allow re-entry. Contact already has execution (COMPLETED)"
    )

    stranger = Contact.objects.create(project=other_project, email="eve@example.com")
    with pytest.raises(NotFound) as missing:
        executions.start_execution(project, workflow.pk, stranger.pk)
    assert missing.value.details["resource"] == "Contact"
    with pytest.raises(ValidationFailed):
        executions.start_execution(project, workflow.pk, contact.pk, context=[1])

    disabled = make(project, enabled=False, name="Off")
    with pytest.raises(WorkflowDisabled) as refused:
        executions.start_execution(project, disabled.pk, contact.pk)
    assert refused.value.status_code == 409 and refused.value.code == "WORKFLOW_DISABLED"
    assert WorkflowExecution.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# list / get


def test_list_pages_newest_first_with_a_status_filter(project):
    workflow = make(project, allow_reentry=True)
    people = [Contact.objects.create(project=project, email=f"p{i}@x.io") for i in range(5)]
    ids = [executions.enroll(workflow, p.pk) for p in people]
    start = timezone.now() - timedelta(hours=1)
    for minutes, execution_id in enumerate(ids):
        WorkflowExecution.objects.filter(pk=execution_id).update(
            started_at=start + timedelta(minutes=minutes)
        )
    finish(ids[1])
    page = executions.list_executions(project, workflow.pk, page=1, page_size=2)
    assert [e.pk for e in page.executions] == [ids[4], ids[3]]
    assert (page.total, page.page, page.page_size, page.total_pages) == (5, 1, 2, 3)
    done = executions.list_executions(project, workflow.pk, status="COMPLETED")
    assert [e.pk for e in done.executions] == [ids[1]] and done.total == 1
    assert executions.list_executions(project, workflow.pk, page=9).executions == []
    with pytest.raises(ValidationFailed) as refused:
        executions.list_executions(project, workflow.pk, status="DONE")
    assert refused.value.errors[0]["field"] == "status"
    assert executions.list_executions(project, workflow.pk, page_size=500).page_size == 100


def test_get_execution_lists_its_steps_oldest_first(project, contact, other_project):
    workflow = make(project)
    run = executions.start_execution(project, workflow.pk, contact.pk)
    trigger, wait = WorkflowStep.objects.filter(workflow=workflow).order_by("order")
    now = timezone.now()
    later = WorkflowStepExecution.objects.create(
        project=project, execution=run, step=wait, contact=contact, status="WAITING",
        created_at=now, wait_event_name="project.created",
    )  # fmt: skip
    first = WorkflowStepExecution.objects.create(
        project=project, execution=run, step=trigger, contact=contact, status="COMPLETED",
        created_at=now - timedelta(seconds=1),
    )  # fmt: skip
    found = executions.get_execution(project, workflow.pk, run.pk)
    assert [s.pk for s in found.steps_run] == [first.pk, later.pk]
    assert found.steps_run[1].step.name == "Wait"
    other = make(project, name="Other")
    for workflow_id in (other.pk, uuid.uuid4()):
        with pytest.raises(NotFound):
            executions.get_execution(project, workflow_id, run.pk)
    with pytest.raises(NotFound):
        executions.get_execution(other_project, workflow.pk, run.pk)


# ---------------------------------------------------------------------------------------------
# cancel


def test_cancel_closes_the_run_and_its_open_steps(project, contact):
    workflow = make(project)
    run = executions.start_execution(project, workflow.pk, contact.pk)
    trigger, wait = WorkflowStep.objects.filter(workflow=workflow).order_by("order")
    done = WorkflowStepExecution.objects.create(
        project=project, execution=run, step=trigger, contact=contact, status="COMPLETED"
    )
    waiting = WorkflowStepExecution.objects.create(
        project=project, execution=run, step=wait, contact=contact, status="WAITING"
    )
    WorkflowExecution.objects.filter(pk=run.pk).update(status="WAITING", current_step=wait)
    cancelled = python_api.cancel(run)
    assert (cancelled.status, cancelled.exit_reason) == ("CANCELLED", "Cancelled by user")
    assert cancelled.completed_at is not None and cancelled.current_step_id == wait.pk
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.status, done.status) == ("SKIPPED", "COMPLETED")
    assert waiting.completed_at == cancelled.completed_at
    again = executions.cancel_execution(project, workflow.pk, run.pk)  # answered as it is
    assert (again.status, again.completed_at) == ("CANCELLED", cancelled.completed_at)


def test_a_finished_run_is_not_cancelled(project, contact):
    workflow = make(project)
    run = executions.start_execution(project, workflow.pk, contact.pk)
    finish(run.pk)
    with pytest.raises(ExecutionFinished) as refused:
        executions.cancel_execution(project, workflow.pk, run.pk)
    assert refused.value.status_code == 409 and refused.value.details == {"status": "COMPLETED"}
    run.refresh_from_db()
    assert (run.status, run.exit_reason) == ("COMPLETED", None)


def test_cancel_all_cancels_the_active_runs_of_one_workflow(project):
    workflow, other = make(project), make(project, name="Other")
    people = [Contact.objects.create(project=project, email=f"p{i}@x.io") for i in range(4)]
    ids = [executions.enroll(workflow, p.pk) for p in people]
    untouched = executions.enroll(other, people[0].pk)
    WorkflowExecution.objects.filter(pk=ids[1]).update(status="WAITING")
    finish(ids[2])
    assert python_api.cancel_all(workflow) == 3
    statuses = dict(WorkflowExecution.objects.values_list("pk", "status"))
    assert [statuses[i] for i in ids] == ["CANCELLED", "CANCELLED", "COMPLETED", "CANCELLED"]
    assert statuses[untouched] == "RUNNING"
    reasons = set(
        WorkflowExecution.objects.filter(status="CANCELLED").values_list("exit_reason", flat=True)
    )
    assert reasons == {"Cancelled by user (bulk cancel)"}
    assert executions.cancel_all(project, workflow.pk) == 0


def test_python_api_start(project, contact):
    workflow = make(project)
    run = python_api.start(workflow, contact, {"source": "import"})
    assert (run.workflow_id, run.contact_id, run.context) == (
        workflow.pk,
        contact.pk,
        {"source": "import"},
    )
    with pytest.raises(NotEnrolled):
        python_api.start(workflow, contact)


# ---------------------------------------------------------------------------------------------
# Concurrent starts (PostgreSQL)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("allow_reentry", [False, True])
def test_fifty_concurrent_starts_enrol_a_contact_once(project, contact, allow_reentry):
    """The WAIT_FOR_EVENT step keeps a started run active, with the runtime or without it."""
    workflow = make(project, allow_reentry=allow_reentry)

    def start():
        try:
            return executions.start_execution(project, workflow.pk, contact.pk).pk
        except NotEnrolled:
            return None

    results = run_at_once(start, 50)
    started = [r for r in results if r is not None]
    assert len(results) == 50 and len(started) == 1
    runs = WorkflowExecution.objects.filter(workflow=workflow)
    assert list(runs.values_list("pk", flat=True)) == started
    assert runs.filter(status__in=["RUNNING", "WAITING"]).count() == 1


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatches_of_one_event_start_one_run(project):
    workflow = make(project, allow_reentry=True)
    people = [Contact.objects.create(project=project, email=f"p{i}@x.io") for i in range(20)]
    event_id = uuid.uuid4()
    queue = list(people)

    def dispatch():
        return executions.enroll(workflow, queue.pop().pk, source_event_id=event_id)

    started = [r for r in run_at_once(dispatch, 20) if r is not None]
    assert len(started) == 1
    assert WorkflowExecution.objects.filter(source_event_id=event_id).count() == 1
