"""Issue 13: a workflow's page (steps top to bottom, settings in words), its runs filtered by
status, a run's step timeline, and cancelling a run through the execution service."""

from __future__ import annotations

import pytest
from django.urls import reverse

from plunk_events.admin.workflow_pages import duration
from plunk_events.models import Contact
from plunk_events.services import executions, workflow_runtime, workflows
from plunk_events.workflow_models import WorkflowExecution


def test_duration_in_words():
    assert duration(259_200) == "3 days"
    assert duration(5_400) == "1 hour 30 minutes"
    assert duration(86_400 + 61) == "1 day 1 minute"
    assert duration(1) == "1 second"
    assert duration(None) == "—"


@pytest.fixture
def flow(project):
    workflow = workflows.create_workflow(
        project,
        name="Thank buyers",
        event_name="purchase",
        enabled=True,
        steps=[
            {"type": "DELAY", "name": "Let it sink in", "config": {"amount": 1, "unit": "hours"}},
            {
                "type": "WAIT_FOR_EVENT",
                "name": "Wait for a review",
                "config": {"eventName": "review", "timeout": 259_200},
            },
            {"type": "EXIT", "name": "Done", "config": {}},
        ],
    )
    contact = Contact.objects.create(project=project, email="ada@example.com")
    return workflow, contact


def test_workflow_page_reads_top_to_bottom(admin_client, flow):
    workflow, _ = flow
    html = admin_client.get(
        reverse("admin:plunk_events_workflow_change", args=[workflow.pk])
    ).content.decode()
    order = [html.index(name) for name in ("Let it sink in", "Wait for a review", "Done")]
    assert order == sorted(order)
    assert "<dt>Give up after</dt><dd>3 days</dd>" in html
    assert "<dt>Wait</dt><dd>1 hour</dd>" in html
    assert "259200" not in html
    assert 'class="plunk-graph"' in html


def test_runs_are_listed_by_status_shown_with_their_steps_and_cancelled(admin_client, flow):
    workflow, contact = flow
    run = executions.start_execution(workflow.project, workflow.pk, contact.pk)
    workflow_runtime.advance(run.pk, run.current_step_id)  # as the worker's task would
    run.refresh_from_db()
    assert run.status == WorkflowExecution.Status.WAITING  # on the DELAY
    listing = reverse("admin:plunk_events_workflowexecution_changelist")
    query = {"project": workflow.project_id, "workflow__id__exact": workflow.pk}
    everything = admin_client.get(listing, query)
    assert [r.pk for r in everything.context["cl"].result_list] == [run.pk]
    finished = admin_client.get(listing, {**query, "status__exact": "COMPLETED"})
    assert list(finished.context["cl"].result_list) == []
    waiting = admin_client.get(listing, {**query, "status__exact": "WAITING"})
    assert [r.pk for r in waiting.context["cl"].result_list] == [run.pk]

    page = reverse("admin:plunk_events_workflowexecution_change", args=[run.pk])
    response = admin_client.get(page)
    assert response.status_code == 200
    timeline = response.context["timeline"]
    assert [s["type"] for s in timeline][:2] == ["Trigger", "Delay"]
    assert timeline[0]["status"] == "COMPLETED" and timeline[0]["finished"] != "—"
    html = response.content.decode()
    assert 'id="plunk-cancel-run"' in html and 'name="_save"' not in html

    cancel = reverse("admin:plunk_events_workflowexecution_cancel", args=[run.pk])
    assert admin_client.post(cancel).status_code == 302
    run.refresh_from_db()
    assert run.status == WorkflowExecution.Status.CANCELLED
    assert 'id="plunk-cancel-run"' not in admin_client.get(page).content.decode()


def test_cancel_needs_the_change_permission(staff_client, flow):
    workflow, contact = flow
    run = executions.start_execution(workflow.project, workflow.pk, contact.pk)
    status = WorkflowExecution.objects.get(pk=run.pk).status
    viewer = staff_client("view_workflowexecution")
    page = reverse("admin:plunk_events_workflowexecution_change", args=[run.pk])
    assert 'id="plunk-cancel-run"' not in viewer.get(page).content.decode()
    cancel = reverse("admin:plunk_events_workflowexecution_cancel", args=[run.pk])
    assert viewer.post(cancel).status_code == 403
    assert viewer.get(cancel).status_code == 403
    assert WorkflowExecution.objects.get(pk=run.pk).status == status


def test_a_run_is_never_deleted_on_its_own(admin_client, flow):
    workflow, contact = flow
    run = executions.start_execution(workflow.project, workflow.pk, contact.pk)
    url = reverse("admin:plunk_events_workflowexecution_delete", args=[run.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert WorkflowExecution.objects.filter(pk=run.pk).exists()
