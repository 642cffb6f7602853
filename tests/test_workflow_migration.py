"""Migration 0007_workflow_runtime: the steps of existing workflows, a list ordered by ``order``,
become the same chain of transitions."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("plunk_events", "0006_idempotency_replay")]
AFTER = [("plunk_events", "0007_workflow_runtime")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


@pytest.fixture
def migrator(transactional_db):
    yield migrate
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_linear_steps_become_a_chain_of_transitions(migrator):
    executor = migrator(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Project = apps.get_model("plunk_events", "Project")
    Workflow = apps.get_model("plunk_events", "Workflow")
    Step = apps.get_model("plunk_events", "WorkflowStep")
    project = Project.objects.create(name="Acme", secret_key_hash="h" * 64)
    workflow = Workflow.objects.create(
        project=project, name="Onboarding", trigger_config={"eventName": "signup"}
    )
    lonely = Workflow.objects.create(project=project, name="Only a trigger")
    specs = [
        ("TRIGGER", {"eventName": "signup"}),
        ("SEND_EMAIL", {}),
        ("CONDITION", {"field": "data.plan", "operator": "equals", "value": "pro"}),
        ("WAIT_FOR_EVENT", {"eventName": "paid", "timeout": 60}),
        ("WAIT_FOR_EVENT", {"eventName": "shipped"}),
        ("EXIT", {}),
        ("DELAY", {"amount": 1, "unit": "days"}),  # after an EXIT: never reached
        ("UPDATE_CONTACT", {"updates": {"late": True}}),
    ]
    # Saved out of order, so the chain must follow ``order``, not insertion or ids.
    ids = {}
    for order in [3, 0, 6, 1, 7, 4, 2, 5]:
        step_type, config = specs[order]
        step = Step.objects.create(
            id=uuid.uuid4(),
            project=project,
            workflow=workflow,
            type=step_type,
            name=f"step {order}",
            config=config,
            order=order,
        )
        ids[order] = step.id
    Step.objects.create(project=project, workflow=lonely, type="TRIGGER", name="t", order=0)

    executor = migrator(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    Transition = apps.get_model("plunk_events", "WorkflowTransition")
    Step = apps.get_model("plunk_events", "WorkflowStep")
    edges = {
        (t.from_step_id, t.to_step_id, t.wait_outcome, str(t.condition), t.priority)
        for t in Transition.objects.filter(workflow_id=workflow.id)
    }
    assert edges == {
        (ids[0], ids[1], None, "None", 0),
        (ids[1], ids[2], None, "None", 0),
        (ids[2], ids[3], None, "{'branch': 'yes'}", 0),
        (ids[3], ids[4], "EVENT", "None", 0),
        (ids[3], ids[4], "TIMEOUT", "None", 0),
        (ids[4], ids[5], "EVENT", "None", 0),
        (ids[6], ids[7], None, "None", 0),
    }
    assert set(Transition.objects.values_list("project_id", flat=True)) == {project.id}
    assert not Transition.objects.filter(workflow_id=lonely.id).exists()
    positions = dict(Step.objects.filter(workflow_id=workflow.id).values_list("id", "position"))
    assert positions == {ids[order]: {"x": 0, "y": order * 150} for order in range(8)}
