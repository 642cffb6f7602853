"""The workflow runtime through the HTTP API, with the configured backend's real worker: the
"Welcome series" of issue 10 (a trigger, a wait for an event with a timeout, a contact update),
and a worker killed in the middle of 20 runs whose every run still finishes exactly once.

``make test`` runs them with the immediate backend (no worker: the kill test skips); CI with
the db and rq workers too (``PLUNK_TASKS_BACKEND``).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plunk_events.models import Contact
from plunk_events.services.projects import create_project
from plunk_events.tasks import enqueue_on_commit, ensure_ticking
from plunk_events.workflow_models import WorkflowExecution, WorkflowStepExecution

from .conftest import has_worker
from .tasks import record

pytestmark = pytest.mark.engine


def warm_up(task_worker, project) -> None:
    """Start the worker and wait until it ran a task: later timings are the engine's."""
    task_worker.start()
    enqueue_on_commit(record, str(project.pk), "warm-up")
    task_worker.wait_until(
        lambda: Contact.objects.filter(project=project).exists(), timeout=60, what="the worker"
    )


def test_welcome_series_waits_for_the_event_then_updates_the_contact(task_worker, client_for):
    project = create_project("Workflows")
    sk, pk = client_for(project.secret_key), client_for(project.public_key)
    warm_up(task_worker, project)

    created = sk.post(
        "/workflows",
        {
            "name": "Welcome series",
            "eventName": "signed_up",
            "enabled": True,
            "steps": [
                {
                    "type": "WAIT_FOR_EVENT",
                    "name": "Wait for a project",
                    "config": {"eventName": "project.created", "timeout": 3 * 86400},
                },
                {
                    "type": "UPDATE_CONTACT",
                    "name": "Mark onboarded",
                    "config": {"updates": {"onboarded": True}},
                },
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    workflow_id = created.json()["id"]

    def executions(status=None):
        params = {"status": status} if status else {}
        response = sk.get(f"/workflows/{workflow_id}/executions", params)
        assert response.status_code == 200, response.content
        return response.json()["executions"]

    response = pk.post("/v1/track", {"email": "ann@shop.test", "event": "signed_up"}, format="json")
    assert response.status_code == 200
    task_worker.wait_until(lambda: executions("WAITING"), timeout=5, what="a WAITING execution")
    [waiting] = executions()
    assert waiting["contact"]["email"] == "ann@shop.test"
    assert waiting["currentStep"]["type"] == "WAIT_FOR_EVENT"

    response = pk.post(
        "/v1/track", {"email": "ann@shop.test", "event": "project.created"}, format="json"
    )
    assert response.status_code == 200
    task_worker.wait_until(lambda: executions("COMPLETED"), timeout=5, what="COMPLETED")
    contact = sk.get(f"/contacts/{waiting['contact']['id']}").json()
    assert contact["data"] == {"onboarded": True}
    detail = sk.get(f"/workflows/{workflow_id}/executions/{waiting['id']}").json()
    assert [s["status"] for s in detail["stepExecutions"]] == ["COMPLETED"] * 3
    assert len(executions()) == 1


class SlowReceiver(BaseHTTPRequestHandler):
    """Answers after a second, so a worker can be killed while a delivery is in flight."""

    keys: list[str] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        SlowReceiver.keys.append(self.headers["Idempotency-Key"])
        time.sleep(1)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_killed_worker_leaves_every_run_to_finish_exactly_once(task_worker, client_for, settings):
    if not has_worker():
        pytest.skip("the immediate backend has no worker to kill")
    SlowReceiver.keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.PLUNK_EVENTS = {
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": ["127.0.0.1/32"],
        "TICK_SECONDS": 1,
        "WORKFLOW_SWEEP_SECONDS": 1,
        "DISPATCH_SWEEP_SECONDS": 1,
        "WORKFLOW_STALLED_SECONDS": 3,
    }
    project = create_project("Killed worker")
    sk, pk = client_for(project.secret_key), client_for(project.public_key)
    warm_up(task_worker, project)
    ensure_ticking()  # the periodic jobs: they pick up what the killed worker dropped

    created = sk.post(
        "/workflows",
        {
            "name": "Slow",
            "eventName": "go",
            "enabled": True,
            "steps": [
                {"type": "DELAY", "name": "Wait", "config": {"amount": 0.02, "unit": "minutes"}},
                {
                    "type": "WEBHOOK",
                    "name": "Tell",
                    "config": {"url": f"http://127.0.0.1:{server.server_address[1]}/hook"},
                },
                {"type": "UPDATE_CONTACT", "name": "Done", "config": {"updates": {"done": True}}},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    emails = [f"c{i}@shop.test" for i in range(20)]
    for email in emails:
        response = pk.post("/v1/track", {"email": email, "event": "go"}, format="json")
        assert response.status_code == 200

    task_worker.wait_until(lambda: SlowReceiver.keys, timeout=30, what="a webhook in flight")
    task_worker.crash()  # SIGKILL: no warm shutdown, a delivery is cut off
    interrupted = WorkflowStepExecution.objects.filter(
        project=project, status="RUNNING", step__type="WEBHOOK"
    ).count()

    task_worker.start()
    runs = WorkflowExecution.objects.filter(project=project)
    try:
        task_worker.wait_until(
            lambda: runs.filter(status="COMPLETED").count() == 20, timeout=90, what="20 COMPLETED"
        )
    except AssertionError:
        states = WorkflowStepExecution.objects.filter(project=project).values_list(
            "step__type", "status"
        )
        print(sorted(runs.values_list("status", "current_step__type")), sorted(states))
        raise
    server.shutdown()
    assert runs.count() == 20  # one run per contact, none started twice
    steps = WorkflowStepExecution.objects.filter(project=project)
    assert steps.count() == 20 * 4 and set(steps.values_list("status", flat=True)) == {"COMPLETED"}
    assert Contact.objects.filter(project=project, data__done=True).count() == 20
    # Each run delivered under one key; a delivery cut off by the kill was repeated with it.
    webhook_ids = {
        str(pk) for pk in steps.filter(step__type="WEBHOOK").values_list("pk", flat=True)
    }
    assert set(SlowReceiver.keys) == webhook_ids
    assert len(SlowReceiver.keys) <= 20 + interrupted
    print(json.dumps({"interrupted": interrupted, "deliveries": len(SlowReceiver.keys)}))
