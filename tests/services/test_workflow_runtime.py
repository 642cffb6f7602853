"""The workflow runtime (plunk_events.services.workflow_runtime): each step type, routing, waits
and timers, and the claims that make a step run once. Executions are created directly here;
enrollment by events is tested with the dispatcher (test_enrollment.py)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

import plunk_events
from plunk_events.models import Contact, Event, Workflow, WorkflowStep
from plunk_events.services import workflow_runtime
from plunk_events.workflow_models import (
    WorkflowExecution,
    WorkflowStepExecution,
    WorkflowTransition,
)

pytestmark = pytest.mark.django_db

Status = WorkflowExecution.Status


def workflow(project, *steps, edges=(), enabled=True, name="Flow") -> tuple[Workflow, list]:
    """A workflow whose steps are ``(type, config)``; ``edges`` are ``(from, to, extra)`` index
    pairs (default: a chain)."""
    flow = Workflow.objects.create(
        project=project, name=name, enabled=enabled, trigger_config={"eventName": "go"}
    )
    rows = [
        WorkflowStep.objects.create(
            project=project, workflow=flow, type=t, name=f"{t} {i}", config=c, order=i
        )
        for i, (t, c) in enumerate([("TRIGGER", {"eventName": "go"}), *steps])
    ]
    if not edges:
        edges = [(i, i + 1, {}) for i in range(len(rows) - 1)]
    for a, b, extra in edges:
        WorkflowTransition.objects.create(
            project=project, workflow=flow, from_step=rows[a], to_step=rows[b], **extra
        )
    return flow, rows


def start(flow, rows, contact, context=None) -> WorkflowExecution:
    execution = WorkflowExecution.objects.create(
        project=flow.project, workflow=flow, contact=contact, current_step=rows[0], context=context
    )
    workflow_runtime.advance(execution.pk, rows[0].pk)
    execution.refresh_from_db()
    return execution


@pytest.fixture
def ann(project):
    return Contact.objects.create(project=project, email="ann@x.io", data={"plan": "pro"})


def step_rows(execution) -> list[tuple[str, str]]:
    return list(
        WorkflowStepExecution.objects.filter(execution=execution)
        .order_by("created_at")
        .values_list("step__type", "status")
    )


def test_a_chain_runs_to_its_end_in_one_call(project, ann):
    flow, rows = workflow(
        project,
        ("UPDATE_CONTACT", {"updates": {"onboarded": True}}),
        ("EXIT", {"reason": "done"}),
    )
    execution = start(flow, rows, ann)
    assert (execution.status, execution.exit_reason) == (Status.COMPLETED, "done")
    assert execution.current_step is None and execution.completed_at is not None
    assert step_rows(execution) == [
        ("TRIGGER", "COMPLETED"),
        ("UPDATE_CONTACT", "COMPLETED"),
        ("EXIT", "COMPLETED"),
    ]
    ann.refresh_from_db()
    assert ann.data == {"plan": "pro", "onboarded": True}
    trigger = WorkflowStepExecution.objects.get(execution=execution, step=rows[0])
    assert trigger.output["triggered"] is True and trigger.output["eventName"] == "manual"


def test_a_run_without_a_next_step_completes(project, ann):
    flow, rows = workflow(project)
    assert start(flow, rows, ann).status == Status.COMPLETED


def test_a_stale_or_repeated_task_runs_nothing(project, ann):
    flow, rows = workflow(project, ("UPDATE_CONTACT", {"subscriptionAction": "unsubscribe"}))
    execution = start(flow, rows, ann)
    assert workflow_runtime.advance(execution.pk, rows[0].pk) is None
    assert workflow_runtime.advance(execution.pk, rows[1].pk) is None
    assert WorkflowStepExecution.objects.filter(execution=execution).count() == 2
    # The subscription change went through the contact service: one event, once.
    assert list(Event.objects.filter(contact=ann).values_list("name", flat=True)) == [
        "contact.unsubscribed"
    ]


def test_a_cancelled_run_does_nothing_more(project, ann):
    flow, rows = workflow(project, ("EXIT", {}))
    execution = WorkflowExecution.objects.create(
        project=project, workflow=flow, contact=ann, current_step=rows[0]
    )
    WorkflowExecution.objects.filter(pk=execution.pk).update(status=Status.CANCELLED)
    assert workflow_runtime.advance(execution.pk, rows[0].pk) is None
    assert not WorkflowStepExecution.objects.exists()


@pytest.mark.parametrize(("plan", "taken"), [("pro", "yes"), ("free", "no")])
def test_a_condition_takes_its_branch(project, ann, plan, taken):
    Contact.objects.filter(pk=ann.pk).update(data={"plan": plan})
    flow, rows = workflow(
        project,
        ("CONDITION", {"field": "data.plan", "operator": "equals", "value": "pro"}),
        ("UPDATE_CONTACT", {"updates": {"branch": "yes"}}),
        ("UPDATE_CONTACT", {"updates": {"branch": "no"}}),
        edges=[
            (0, 1, {}),
            (1, 2, {"condition": {"branch": "yes"}}),
            (1, 3, {"condition": {"branch": "no"}}),
        ],
    )
    execution = start(flow, rows, ann)
    ann.refresh_from_db()
    assert ann.data["branch"] == taken
    condition = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert condition.output["branch"] == taken
    assert condition.output["actualValue"] == plan


def test_a_multi_branch_condition_reads_the_trigger_context(project, ann):
    config = {
        "mode": "multi",
        "field": "event.amount",
        "branches": [
            {"id": "big", "name": "Big", "operator": "greaterThan", "value": 100},
            {"id": "some", "name": "Some", "operator": "greaterThan", "value": 0},
        ],
    }
    flow, rows = workflow(
        project,
        ("CONDITION", config),
        ("EXIT", {"reason": "big"}),
        ("EXIT", {"reason": "some"}),
        ("EXIT", {"reason": "none"}),
        edges=[
            (0, 1, {}),
            (1, 2, {"condition": {"branch": "big"}}),
            (1, 3, {"condition": {"branch": "some"}}),
            (1, 4, {"condition": {"branch": "default"}}),
        ],
    )
    assert start(flow, rows, ann, {"amount": 150}).exit_reason == "big"
    WorkflowExecution.objects.all().delete()
    assert start(flow, rows, ann, {"amount": 5}).exit_reason == "some"
    WorkflowExecution.objects.all().delete()
    assert start(flow, rows, ann, {}).exit_reason == "none"


def test_a_delay_parks_the_run_until_its_time(project, ann):
    flow, rows = workflow(
        project, ("DELAY", {"amount": 2, "unit": "hours"}), ("EXIT", {"reason": "later"})
    )
    before = timezone.now()
    execution = start(flow, rows, ann)
    assert (execution.status, execution.current_step_id) == (Status.WAITING, rows[2].pk)
    scheduled = WorkflowStepExecution.objects.get(execution=execution, step=rows[2])
    assert scheduled.status == "SCHEDULED"
    assert before + timedelta(hours=2) <= scheduled.execute_after
    assert scheduled.execute_after <= timezone.now() + timedelta(hours=2)

    # Early: nothing happens, however often it is asked.
    assert workflow_runtime.advance(execution.pk, rows[2].pk) == Status.WAITING
    assert workflow_runtime.resume_stalled()["timers"] == 0
    # Due (the deferred task, or here the periodic job that covers a lost one).
    later = scheduled.execute_after + timedelta(seconds=1)
    WorkflowStepExecution.objects.filter(pk=scheduled.pk).update(
        execute_after=timezone.now() - timedelta(seconds=1)
    )
    assert workflow_runtime.resume_stalled(now=later)["timers"] == 1
    execution.refresh_from_db()
    assert (execution.status, execution.exit_reason) == (Status.COMPLETED, "later")


def wait_flow(project, timeout=None):
    config = {"eventName": "project.created", **({"timeout": timeout} if timeout else {})}
    edges = [
        (0, 1, {}),
        (1, 2, {"wait_outcome": "EVENT"}),
        *([(1, 3, {"wait_outcome": "TIMEOUT"})] if timeout else []),
    ]
    return workflow(
        project,
        ("WAIT_FOR_EVENT", config),
        ("UPDATE_CONTACT", {"updates": {"onboarded": True}}),
        ("EXIT", {"reason": "timed out"}),
        edges=edges,
    )


def test_a_wait_resumes_on_the_contacts_event_only(
    project, ann, django_capture_on_commit_callbacks
):
    flow, rows = wait_flow(project, timeout=3 * 86400)
    execution = start(flow, rows, ann, {"source": "signup"})
    assert execution.status == Status.WAITING
    waiting = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert (waiting.status, waiting.wait_event_name) == ("WAITING", "project.created")

    with django_capture_on_commit_callbacks(execute=True):
        plunk_events.track(project, "bob@x.io", "project.created")  # another contact
        plunk_events.track(project, "ann@x.io", "project.opened")  # another event
    execution.refresh_from_db()
    assert execution.status == Status.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        plunk_events.track(project, "ann@x.io", "project.created", data={"projectId": "p1"})
    execution.refresh_from_db()
    assert execution.status == Status.COMPLETED and execution.exit_reason is None
    assert execution.context == {"source": "signup", "projectId": "p1"}
    ann.refresh_from_db()
    assert ann.data["onboarded"] is True
    waiting.refresh_from_db()
    assert waiting.output["eventData"] == {"projectId": "p1"}
    # The timeout, when it comes, finds nothing waiting.
    assert not workflow_runtime.resume_wait(waiting.pk, "TIMEOUT")


def test_a_wait_times_out_along_its_timeout_edge(project, ann, django_capture_on_commit_callbacks):
    flow, rows = wait_flow(project, timeout=60)
    execution = start(flow, rows, ann)
    waiting = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert not workflow_runtime.resume_wait(waiting.pk, "TIMEOUT")  # not due yet
    WorkflowStepExecution.objects.filter(pk=waiting.pk).update(
        execute_after=timezone.now() - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):  # the next step is a task
        assert workflow_runtime.resume_stalled()["timeouts"] == 1
    execution.refresh_from_db()
    assert (execution.status, execution.exit_reason) == (Status.COMPLETED, "timed out")
    waiting.refresh_from_db()
    assert waiting.output["timedOut"] is True


def test_an_event_before_the_wait_began_does_not_resume_it(project, ann):
    flow, rows = wait_flow(project)
    old = Event.objects.create(
        project=project,
        contact=ann,
        name="project.created",
        created_at=timezone.now() - timedelta(minutes=5),
    )
    execution = start(flow, rows, ann)
    assert (
        workflow_runtime.resume_waits_for(
            "default", project.pk, ann.pk, old.name, old.id, old.created_at, None
        )
        == 0
    )
    execution.refresh_from_db()
    assert execution.status == Status.WAITING


def test_send_email_without_its_template_fails_the_run(project, ann):
    """The step itself is tested in tests/email/test_send_email_step.py."""
    flow, rows = workflow(project, ("SEND_EMAIL", {"templateId": "t"}))
    execution = start(flow, rows, ann)
    assert execution.status == Status.FAILED
    failed = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert failed.status == "FAILED" and failed.error == "Template not found: t"


def test_a_run_left_running_by_a_dead_worker_is_resumed(project, ann):
    flow, rows = workflow(project, ("EXIT", {"reason": "resumed"}))
    execution = WorkflowExecution.objects.create(
        project=project,
        workflow=flow,
        contact=ann,
        current_step=rows[1],
        updated_at=timezone.now() - timedelta(minutes=5),
    )
    assert workflow_runtime.resume_stalled()["stalled"] == 1
    execution.refresh_from_db()
    assert (execution.status, execution.exit_reason) == (Status.COMPLETED, "resumed")


# WEBHOOK, against a real server on 127.0.0.1


class Receiver(BaseHTTPRequestHandler):
    requests: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.requests.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(Receiver.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    settings.PLUNK_EVENTS = {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": ["127.0.0.1/32"]}
    Receiver.requests, Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_webhook_delivers_the_default_payload_with_an_idempotency_key(project, ann, receiver):
    flow, rows = workflow(project, ("WEBHOOK", {"url": receiver + "/hook/{{plan}}"}))
    execution = start(flow, rows, ann, {"amount": 3})
    assert execution.status == Status.COMPLETED
    [(path, headers, body)] = Receiver.requests
    step = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert path == "/hook/pro"
    assert headers["Idempotency-Key"] == str(step.pk)
    assert body["contact"] == {"email": "ann@x.io", "subscribed": True, "data": {"plan": "pro"}}
    assert body["workflow"] == {"id": str(flow.pk), "name": "Flow"}
    assert body["event"] == {"amount": 3}
    assert step.output["statusCode"] == 200 and step.output["response"] == {"ok": True}


def test_a_webhook_answering_500_completes_the_step(project, ann, receiver):
    Receiver.status = 500
    flow, rows = workflow(project, ("WEBHOOK", {"url": receiver, "body": {"who": "{{email}}"}}))
    execution = start(flow, rows, ann)
    assert execution.status == Status.COMPLETED
    assert Receiver.requests[0][2] == {"who": "ann@x.io"}
    step = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert (step.output["statusCode"], step.output["success"]) == (500, False)


def test_a_refused_webhook_target_fails_the_run(project, ann):
    flow, rows = workflow(project, ("WEBHOOK", {"url": "http://10.0.0.1/hook"}))
    execution = start(flow, rows, ann)
    assert execution.status == Status.FAILED
    step = WorkflowStepExecution.objects.get(execution=execution, step=rows[1])
    assert step.status == "FAILED" and "10.0.0.1" in step.error


# Timers: one task per project and second, not one per run


def test_delays_ending_together_share_one_timer_task(
    project, deferring, django_capture_on_commit_callbacks
):
    flow, rows = workflow(project, ("DELAY", {"amount": 1, "unit": "hours"}), ("EXIT", {}))
    contacts = [Contact.objects.create(project=project, email=f"{i}@x.io") for i in range(30)]
    with django_capture_on_commit_callbacks(execute=True):
        for contact in contacts:
            start(flow, rows, contact)
    timers = [r for r in deferring if r.task.name == "resume_due_workflows"]
    # The 30 DELAYs end within a second or two of each other: a task per second, not per run.
    assert 1 <= len(timers) <= 3
    assert all(r.args == [str(project.pk)] for r in timers)
    due = WorkflowStepExecution.objects.filter(status="SCHEDULED").order_by("execute_after")
    assert timers[0].task.run_after >= due.first().execute_after
    assert timers[-1].task.run_after >= due.last().execute_after

    # When they are due, one call resumes them all.
    WorkflowStepExecution.objects.filter(status="SCHEDULED").update(
        execute_after=timezone.now() - timedelta(seconds=1)
    )
    assert workflow_runtime.resume_due(project.pk)["timers"] == 30
    assert WorkflowExecution.objects.filter(status="COMPLETED").count() == 30


def test_a_timer_of_a_cancelled_run_is_skipped(project, ann):
    flow, rows = workflow(project, ("DELAY", {"amount": 1, "unit": "minutes"}), ("EXIT", {}))
    execution = start(flow, rows, ann)
    WorkflowExecution.objects.filter(pk=execution.pk).update(status=Status.CANCELLED)
    WorkflowStepExecution.objects.filter(status="SCHEDULED").update(
        execute_after=timezone.now() - timedelta(seconds=1)
    )
    assert workflow_runtime.resume_due(project.pk)["timers"] == 0
    assert WorkflowStepExecution.objects.get(step=rows[2]).status == "SKIPPED"
    assert workflow_runtime.resume_due(project.pk)["timers"] == 0  # and not read again
