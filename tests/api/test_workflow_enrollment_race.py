"""50 concurrent tracks of a workflow's trigger for one contact, on real PostgreSQL connections
(issue 10): without re-entry exactly one execution starts; with re-entry at most one is active.
The immediate backend dispatches inline after each commit, so the 50 dispatches race too."""

from __future__ import annotations

import pytest

from plunk_events.services import workflows
from plunk_events.workflow_models import WorkflowExecution
from tests.concurrency import run_at_once

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

TRACKS = 50


def track_from_threads(client_for, project) -> list[int]:
    def post() -> int:
        client = client_for(project.public_key)
        body = {"email": "ann@shop.test", "event": "signed_up"}
        return client.post("/v1/track", body, format="json").status_code

    return run_at_once(post, TRACKS)


@pytest.mark.parametrize("allow_reentry", [False, True])
def test_concurrent_triggers_for_one_contact(project, client_for, allow_reentry):
    wait = {"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "never"}}
    welcome = workflows.create_workflow(
        project,
        name="Welcome",
        event_name="signed_up",
        enabled=True,
        allow_reentry=allow_reentry,
        steps=[wait],
    )
    assert track_from_threads(client_for, project) == [200] * TRACKS
    runs = WorkflowExecution.objects.filter(workflow=welcome)
    assert runs.count() == 1
    assert runs.get().status == "WAITING"
