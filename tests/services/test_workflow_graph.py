"""Editing a workflow's graph (services.workflow_graph, services.workflows): the rules of each
step type and transition, the guards that keep active executions from being stranded, and the
locks that make concurrent edits of one workflow run one at a time."""

from __future__ import annotations

import uuid

import pytest

from plunk_events.models import (
    Contact,
    Event,
    Template,
    Workflow,
    WorkflowExecution,
    WorkflowStep,
    WorkflowStepExecution,
    WorkflowTransition,
)
from plunk_events.services import deletion, executions, workflow_graph, workflows
from plunk_events.services.errors import Conflict, NotFound, ValidationFailed
from plunk_events.services.workflow_graph import ActiveExecutions
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

WAIT = {"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "paid", "timeout": 60}}
DELAY = {"type": "DELAY", "name": "Delay", "config": {"amount": 1, "unit": "days"}}
CONDITION = {
    "type": "CONDITION",
    "name": "Pro?",
    "config": {"field": "data.plan", "operator": "equals", "value": "pro"},
}
MULTI = {
    "type": "CONDITION",
    "name": "Plan",
    "config": {
        "mode": "multi",
        "field": "data.plan",
        "branches": [
            {"id": "pro", "name": "Pro", "operator": "equals", "value": "pro"},
            {"id": "free", "name": "Free", "operator": "equals", "value": "free"},
        ],
    },
}
EXIT = {"type": "EXIT", "name": "Done", "config": {"reason": "done"}}
#: A SEND_EMAIL step names one of the project's templates.
TEMPLATE_ID = "0b6f2f4e-8a55-4d43-9a57-1f1e6c3b2a10"
UPDATE = {"type": "UPDATE_CONTACT", "name": "Mark", "config": {"updates": {"onboarded": True}}}


def make(project, *steps, **kwargs):
    kwargs.setdefault("name", "Onboarding")
    kwargs.setdefault("event_name", "signup")
    return workflows.create_workflow(project, steps=list(steps), **kwargs)


def named(workflow) -> dict[str, WorkflowStep]:
    return {s.name: s for s in WorkflowStep.objects.filter(workflow=workflow)}


def edges(workflow) -> set[tuple]:
    """(from name, to name, branch, outcome) of every transition."""
    rows = WorkflowTransition.objects.filter(workflow=workflow).select_related(
        "from_step", "to_step"
    )
    return {
        (t.from_step.name, t.to_step.name, (t.condition or {}).get("branch"), t.wait_outcome)
        for t in rows
    }


def add(project, workflow, step, **kwargs):
    return workflow_graph.add_step(project, workflow.pk, **step, **kwargs)


def connect(project, workflow, source, target, **kwargs):
    return workflow_graph.create_transition(
        project, workflow.pk, from_step_id=source.pk, to_step_id=target.pk, **kwargs
    )


@pytest.fixture
def contact(project):
    return Contact.objects.create(project=project, email="ada@example.com")


def run_at(workflow, step, contact, status="WAITING") -> WorkflowExecution:
    """An execution of ``workflow`` that the runtime has moved onto ``step``."""
    execution_id = executions.enroll(workflow, contact.pk)
    WorkflowExecution.objects.filter(pk=execution_id).update(current_step=step, status=status)
    return WorkflowExecution.objects.get(pk=execution_id)


def field_errors(excinfo) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in excinfo.value.errors]


# ---------------------------------------------------------------------------------------------
# The linear chain of POST /workflows


def test_steps_become_a_chain_by_each_steps_rule(project):
    workflow = make(project, CONDITION, WAIT, {**WAIT, "name": "Wait forever", "config": {"eventName": "x"}}, MULTI, DELAY, EXIT)  # fmt: skip
    assert edges(workflow) == {
        ("Trigger: signup", "Pro?", None, None),
        ("Pro?", "Wait", "yes", None),
        ("Wait", "Wait forever", None, "EVENT"),
        ("Wait", "Wait forever", None, "TIMEOUT"),
        ("Wait forever", "Plan", None, "EVENT"),
        ("Plan", "Delay", "pro", None),
        ("Delay", "Done", None, None),
    }
    assert [(s.order, s.position) for s in workflow.steps.all()] == [
        (i, {"x": 0, "y": 150 * i}) for i in range(7)
    ]


def test_nothing_may_follow_an_exit_in_the_chain(project):
    with pytest.raises(ValidationFailed) as refused:
        make(project, EXIT, DELAY)
    assert field_errors(refused) == [("steps.1.type", "custom")]
    assert not Workflow.objects.exists()


# ---------------------------------------------------------------------------------------------
# Step configs


@pytest.mark.parametrize(
    ("step", "errors"),
    [
        ({"type": "TRIGGER", "name": "t", "config": {"eventName": "x"}}, [("type", "custom")]),
        ({"type": "TELEPORT", "name": "t"}, [("type", "invalid_enum_value")]),
        ({"type": "EXIT", "name": " "}, [("name", "too_small")]),
        ({"type": "EXIT", "name": "x" * 101}, [("name", "too_big")]),
        ({"type": "EXIT", "name": "e", "config": []}, [("config", "invalid_type")]),
        ({"type": "EXIT", "name": "e", "config": {"reason": 3}}, [("config.reason", "invalid_type")]),
        ({"type": "EXIT", "name": "e", "position": {"x": "1", "y": 2}}, [("position.x", "invalid_type")]),
        ({"type": "EXIT", "name": "e", "position": [1, 2]}, [("position", "invalid_type")]),
        ({"type": "SEND_EMAIL", "name": "s", "config": {"templateId": "t1"}}, [("config.templateId", "invalid_string")]),
        ({"type": "SEND_EMAIL", "name": "s", "config": {"templateId": 7}}, [("config.templateId", "invalid_type")]),
        ({"type": "DELAY", "name": "d", "config": {"amount": -1, "unit": "hours"}}, [("config.amount", "too_small")]),
        ({"type": "DELAY", "name": "d", "config": {"amount": 8761, "unit": "hours"}}, [("config.amount", "too_big")]),
        ({"type": "DELAY", "name": "d", "config": {"amount": 1, "unit": "weeks"}}, [("config.unit", "invalid_enum_value")]),
        ({"type": "WAIT_FOR_EVENT", "name": "w", "config": {"timeout": 5}}, [("config.eventName", "invalid_type")]),
        ({"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "p", "timeout": 31536001}}, [("config.timeout", "too_big")]),
        ({"type": "CONDITION", "name": "c", "config": {"field": "data.a", "operator": "like"}}, [("config.operator", "invalid_enum_value")]),
        ({"type": "CONDITION", "name": "c", "config": {"field": "plan", "operator": "exists"}}, [("config.field", "custom")]),
        ({"type": "CONDITION", "name": "c", "config": {"mode": "multi", "field": "data.a", "branches": []}}, [("config.branches", "too_small")]),
        ({"type": "CONDITION", "name": "c", "config": {"mode": "multi", "field": "data.a", "branches": [{"id": "default", "name": "d", "operator": "exists"}]}}, [("config.branches.0.id", "custom")]),
        ({"type": "WEBHOOK", "name": "h", "config": {}}, [("config.url", "invalid_type")]),
        ({"type": "WEBHOOK", "name": "h", "config": {"url": "ftp://example.com/x"}}, [("config.url", "invalid_string")]),
        ({"type": "WEBHOOK", "name": "h", "config": {"url": "https://", "method": "FETCH"}}, [("config.url", "invalid_string"), ("config.method", "invalid_enum_value")]),
        ({"type": "WEBHOOK", "name": "h", "config": {"url": "https://x.io", "headers": {"X-A": 1}}}, [("config.headers.X-A", "invalid_type")]),
        ({"type": "UPDATE_CONTACT", "name": "u", "config": {}}, [("config", "custom")]),
        ({"type": "UPDATE_CONTACT", "name": "u", "config": {"updates": {}, "subscriptionAction": "none"}}, [("config", "custom")]),
        ({"type": "UPDATE_CONTACT", "name": "u", "config": {"subscriptionAction": "pause"}}, [("config.subscriptionAction", "invalid_enum_value")]),
        ({"type": "UPDATE_CONTACT", "name": "u", "config": {"updates": []}}, [("config.updates", "invalid_type"), ("config", "custom")]),
    ],
)  # fmt: skip
def test_a_step_that_breaks_its_types_rules_is_refused(project, step, errors):
    workflow = make(project)
    with pytest.raises(ValidationFailed) as refused:
        add(project, workflow, step)
    assert field_errors(refused) == errors
    assert WorkflowStep.objects.filter(workflow=workflow).count() == 1


@pytest.mark.parametrize(
    "step",
    [
        {"type": "SEND_EMAIL", "name": "s", "config": {"templateId": TEMPLATE_ID}},
        {"type": "SEND_EMAIL", "name": "s"},
        {"type": "WEBHOOK", "name": "h", "config": {"url": "https://hooks.example.com/{{id}}", "method": "PUT", "headers": {"X-Key": "{{data.key}}"}, "body": {"a": [1]}}},
        {"type": "UPDATE_CONTACT", "name": "u", "config": {"subscriptionAction": "unsubscribe"}},
        {"type": "EXIT", "name": "e", "position": {"x": -20.5, "y": 3}},
        MULTI,
    ],
)  # fmt: skip
def test_valid_steps_are_stored_as_sent(project, step):
    Template.objects.create(id=TEMPLATE_ID, project=project, name="t", subject="s", body="b")
    stored = add(project, make(project), step)
    stored.refresh_from_db()
    assert stored.config == step.get("config", {})
    assert stored.position == step.get("position", {"x": 0, "y": 0})


# ---------------------------------------------------------------------------------------------
# add_step


def test_auto_connect_leads_from_the_newest_leaf(project):
    workflow = make(project, CONDITION)
    add(project, workflow, DELAY)  # from the CONDITION, by its yes branch
    add(project, workflow, EXIT)  # from the DELAY
    add(project, workflow, UPDATE)  # the EXIT leads nowhere: from the newest other leaf, none
    add(project, workflow, WAIT, auto_connect=False)
    add(project, workflow, {**EXIT, "name": "After wait"})  # from the WAIT: both outcomes
    assert edges(workflow) == {
        ("Trigger: signup", "Pro?", None, None),
        ("Pro?", "Delay", "yes", None),
        ("Delay", "Done", None, None),
        ("Wait", "After wait", None, "EVENT"),
        ("Wait", "After wait", None, "TIMEOUT"),
    }
    assert [s.order for s in workflow.steps.order_by("order")] == list(range(7))


def test_auto_connect_from_a_multi_branch_condition_takes_its_first_branch(project):
    workflow = make(project, MULTI)
    add(project, workflow, DELAY)
    assert ("Plan", "Delay", "pro", None) in edges(workflow)


def test_a_wait_step_naming_an_event_being_deleted_is_refused(project, contact):
    workflow = make(project)
    Event.objects.create(project=project, contact=contact, name="paid")
    deletion.start_deletion(project, "paid")  # recorded, its worker alive
    with pytest.raises(Conflict) as refused:
        add(project, workflow, WAIT)
    assert refused.value.details["eventNames"] == ["paid"]
    assert WorkflowStep.objects.filter(workflow=workflow).count() == 1


def test_steps_of_another_projects_workflow_are_404(project, other_project):
    theirs = make(other_project)
    with pytest.raises(NotFound):
        add(project, theirs, DELAY)
    step = theirs.steps.get()
    with pytest.raises(NotFound):
        workflow_graph.update_step(project, theirs.pk, step.pk, name="x")


# ---------------------------------------------------------------------------------------------
# update_step


def test_update_step_renames_moves_and_reconfigures(project):
    workflow = make(project, DELAY)
    step = named(workflow)["Delay"]
    updated = workflow_graph.update_step(
        project,
        workflow.pk,
        step.pk,
        name="Two days",
        position={"x": 5, "y": 6, "z": 7},
        config={"amount": 2, "unit": "days"},
    )
    step.refresh_from_db()
    assert (step.name, step.position, step.config) == (
        "Two days",
        {"x": 5, "y": 6},
        {"amount": 2, "unit": "days"},
    )
    assert updated.config == step.config


def test_the_trigger_steps_config_follows_the_workflow(project):
    workflow = make(project)
    trigger = workflow.steps.get()
    with pytest.raises(ValidationFailed) as refused:
        workflow_graph.update_step(project, workflow.pk, trigger.pk, config={"eventName": "x"})
    assert field_errors(refused) == [("config", "custom")]
    workflow_graph.update_step(project, workflow.pk, trigger.pk, name="Start")
    assert workflow.steps.get().name == "Start"


def test_a_config_change_is_refused_while_enabled_with_active_executions(project, contact):
    workflow = make(project, DELAY, enabled=True)
    delay = named(workflow)["Delay"]
    run_at(workflow, delay, contact)
    two_days = {"amount": 2, "unit": "days"}
    with pytest.raises(ActiveExecutions) as refused:
        workflow_graph.update_step(project, workflow.pk, delay.pk, config=two_days)
    assert refused.value.status_code == 409
    assert refused.value.details == {"activeExecutions": 1}
    # The same config, a name or a position are fine; so is any change once disabled.
    workflow_graph.update_step(project, workflow.pk, delay.pk, config=DELAY["config"], name="D")
    workflows.update_workflow(project, workflow.pk, enabled=False)
    workflow_graph.update_step(project, workflow.pk, delay.pk, config=two_days)
    delay.refresh_from_db()
    assert (delay.name, delay.config) == ("D", two_days)


def test_a_config_change_must_keep_the_steps_transitions_takeable(project):
    workflow = make(project, WAIT, DELAY)
    wait = named(workflow)["Wait"]
    with pytest.raises(ValidationFailed) as refused:
        workflow_graph.update_step(project, workflow.pk, wait.pk, config={"eventName": "paid"})
    assert field_errors(refused) == [("config.timeout", "custom")]
    condition = add(project, workflow, CONDITION)
    add(project, workflow, EXIT)  # by the yes branch
    with pytest.raises(ValidationFailed) as refused:
        workflow_graph.update_step(project, workflow.pk, condition.pk, config=MULTI["config"])
    assert field_errors(refused) == [("config", "custom")]
    assert "(yes)" in refused.value.errors[0]["message"]


# ---------------------------------------------------------------------------------------------
# delete_step


def test_deleting_a_step_deletes_the_steps_after_it(project):
    workflow = make(project, CONDITION, DELAY, EXIT)
    steps = named(workflow)
    other = add(project, workflow, UPDATE, auto_connect=False)
    connect(project, workflow, steps["Pro?"], other, condition={"branch": "no"})
    workflow_graph.delete_step(project, workflow.pk, steps["Delay"].pk)
    assert set(named(workflow)) == {"Trigger: signup", "Pro?", "Mark"}
    assert edges(workflow) == {
        ("Trigger: signup", "Pro?", None, None),
        ("Pro?", "Mark", "no", None),
    }


def test_the_trigger_step_cannot_be_deleted(project):
    workflow = make(project, DELAY)
    trigger = named(workflow)["Trigger: signup"]
    for splice in (False, True):
        with pytest.raises(ValidationFailed) as refused:
            workflow_graph.delete_step(project, workflow.pk, trigger.pk, splice=splice)
        assert field_errors(refused) == [("stepId", "custom")]
    assert workflow.steps.count() == 2


def test_splice_removes_only_the_step_and_reconnects_its_parents(project):
    workflow = make(project, CONDITION, DELAY, EXIT)
    steps = named(workflow)
    connect(project, workflow, steps["Pro?"], steps["Delay"], condition={"branch": "no"})
    workflow_graph.delete_step(project, workflow.pk, steps["Delay"].pk, splice=True)
    assert edges(workflow) == {
        ("Trigger: signup", "Pro?", None, None),
        ("Pro?", "Done", "yes", None),
        ("Pro?", "Done", "no", None),
    }
    workflow_graph.delete_step(project, workflow.pk, steps["Done"].pk, splice=True)  # a leaf
    assert edges(workflow) == {("Trigger: signup", "Pro?", None, None)}


@pytest.mark.parametrize("step", [CONDITION, WAIT])
def test_steps_with_several_children_cannot_be_spliced(project, step):
    workflow = make(project, step, EXIT)
    with pytest.raises(ValidationFailed) as refused:
        workflow_graph.delete_step(
            project, workflow.pk, named(workflow)[step["name"]].pk, splice=True
        )
    assert field_errors(refused) == [("splice", "custom")]
    assert workflow.steps.count() == 3


@pytest.mark.parametrize("enabled", [True, False])
def test_steps_with_executions_on_them_or_after_them_stay(project, contact, enabled):
    """Enabled or not: a disabled workflow's executions keep running."""
    workflow = make(project, DELAY, WAIT, EXIT, enabled=enabled)
    steps = named(workflow)
    run_at(workflow, steps["Wait"], contact)
    for step, splice in [(steps["Delay"], False), (steps["Wait"], False)]:
        with pytest.raises(ActiveExecutions):
            workflow_graph.delete_step(project, workflow.pk, step.pk, splice=splice)
    with pytest.raises(ActiveExecutions):
        workflow_graph.delete_step(project, workflow.pk, steps["Delay"].pk)
    # Splicing the DELAY out strands nobody; deleting after the wait does neither.
    workflow_graph.delete_step(project, workflow.pk, steps["Delay"].pk, splice=True)
    workflow_graph.delete_step(project, workflow.pk, steps["Done"].pk)
    assert set(named(workflow)) == {"Trigger: signup", "Wait"}
    assert edges(workflow) == {("Trigger: signup", "Wait", None, None)}


def test_finished_executions_do_not_block_and_keep_their_history(project, contact):
    workflow = make(project, DELAY, enabled=True)
    delay = named(workflow)["Delay"]
    run = run_at(workflow, delay, contact, status="FAILED")
    WorkflowStepExecution.objects.create(
        project=project, execution=run, step=delay, contact=contact, status="FAILED"
    )
    workflow_graph.delete_step(project, workflow.pk, delay.pk)
    run.refresh_from_db()
    assert (run.status, run.current_step_id) == ("FAILED", None)
    assert not WorkflowStepExecution.objects.filter(execution=run).exists()


# ---------------------------------------------------------------------------------------------
# Transitions


@pytest.fixture
def graph(project):
    workflow = make(project, CONDITION, WAIT, MULTI)
    steps = named(workflow)
    steps["Delay"] = add(project, workflow, DELAY, auto_connect=False)
    steps["Done"] = add(project, workflow, EXIT, auto_connect=False)
    steps["Wait forever"] = add(project, workflow, {**WAIT, "name": "Wait forever", "config": {"eventName": "x"}}, auto_connect=False)  # fmt: skip
    return workflow, steps


@pytest.mark.parametrize(
    ("source", "target", "kwargs", "errors"),
    [
        ("Delay", "Delay", {}, [("toStepId", "custom")]),
        ("Done", "Delay", {}, [("fromStepId", "custom")]),
        ("Delay", "Trigger: signup", {}, [("toStepId", "custom")]),
        ("Trigger: signup", "Delay", {}, [("fromStepId", "custom")]),
        ("Delay", "Done", {"condition": {"branch": "yes"}}, [("condition", "custom")]),
        ("Delay", "Done", {"wait_outcome": "EVENT"}, [("waitOutcome", "custom")]),
        ("Delay", "Done", {"wait_outcome": "LATER"}, [("waitOutcome", "invalid_enum_value")]),
        ("Pro?", "Done", {}, [("condition", "invalid_type")]),
        ("Pro?", "Done", {"condition": "no"}, [("condition", "invalid_type")]),
        ("Pro?", "Done", {"condition": {"branch": 1}}, [("condition.branch", "invalid_type")]),
        ("Pro?", "Done", {"condition": {"branch": "maybe"}}, [("condition.branch", "invalid_enum_value")]),
        ("Pro?", "Done", {"condition": {"branch": "yes"}}, [("condition.branch", "custom")]),
        ("Pro?", "Done", {"condition": {"branch": "no"}, "wait_outcome": "EVENT"}, [("waitOutcome", "custom")]),
        ("Plan", "Done", {"condition": {"branch": "no"}}, [("condition.branch", "invalid_enum_value")]),
        ("Wait", "Done", {}, [("waitOutcome", "invalid_type")]),
        ("Wait", "Done", {"wait_outcome": "EVENT"}, [("waitOutcome", "custom")]),
        ("Wait", "Done", {"wait_outcome": "TIMEOUT", "condition": {"branch": "yes"}}, [("condition", "custom"), ("waitOutcome", "custom")]),
        ("Wait forever", "Done", {"wait_outcome": "TIMEOUT"}, [("waitOutcome", "custom")]),
        ("Plan", "Pro?", {"condition": {"branch": "free"}}, [("toStepId", "custom")]),
    ],
)  # fmt: skip
def test_transitions_that_break_the_rules_are_refused(
    project, graph, source, target, kwargs, errors
):
    workflow, steps = graph
    before = edges(workflow)
    with pytest.raises(ValidationFailed) as refused:
        connect(project, workflow, steps[source], steps[target], **kwargs)
    assert field_errors(refused) == errors
    assert edges(workflow) == before


def test_transitions_by_the_rules(project, graph):
    workflow, steps = graph
    made = [
        connect(project, workflow, steps["Pro?"], steps["Done"], condition={"branch": "no", "x": 1}),
        connect(project, workflow, steps["Plan"], steps["Delay"], condition={"branch": "default"}, priority=3),
        connect(project, workflow, steps["Plan"], steps["Done"], condition={"branch": "free"}),
        connect(project, workflow, steps["Wait forever"], steps["Done"], wait_outcome="EVENT"),
        connect(project, workflow, steps["Delay"], steps["Wait forever"]),
    ]  # fmt: skip
    assert made[0].condition == {"branch": "no"}  # only the branch is kept
    assert made[1].priority == 3
    assert {(t.project_id, t.workflow_id) for t in made} == {(project.pk, workflow.pk)}
    assert {e for e in edges(workflow) if e[0] in ("Pro?", "Plan", "Wait forever", "Delay")} == {
        ("Pro?", "Wait", "yes", None),
        ("Pro?", "Done", "no", None),
        ("Plan", "Delay", "default", None),
        ("Plan", "Done", "free", None),
        ("Wait forever", "Done", None, "EVENT"),
        ("Delay", "Wait forever", None, None),
    }


def test_steps_of_another_workflow_are_404(project, graph):
    workflow, steps = graph
    elsewhere = make(project, DELAY, name="Elsewhere")
    with pytest.raises(NotFound) as missing:
        connect(project, workflow, steps["Delay"], named(elsewhere)["Delay"])
    assert missing.value.details["resource"] == "WorkflowStep"
    with pytest.raises(NotFound):
        workflow_graph.create_transition(
            project, workflow.pk, from_step_id="nope", to_step_id=steps["Done"].pk
        )


def test_deleting_a_transition(project, contact):
    workflow = make(project, DELAY, EXIT, enabled=True)
    steps = named(workflow)
    into_exit = WorkflowTransition.objects.get(to_step=steps["Done"])
    into_delay = WorkflowTransition.objects.get(to_step=steps["Delay"])
    run_at(workflow, steps["Delay"], contact)
    with pytest.raises(ActiveExecutions):  # cuts off the step the execution is on
        workflow_graph.delete_transition(project, workflow.pk, into_delay.pk)
    workflow_graph.delete_transition(project, workflow.pk, into_exit.pk)
    assert edges(workflow) == {("Trigger: signup", "Delay", None, None)}
    with pytest.raises(NotFound):
        workflow_graph.delete_transition(project, workflow.pk, into_exit.pk)


# ---------------------------------------------------------------------------------------------
# insert_step


def test_insert_step_splits_a_transition(project):
    workflow = make(project, CONDITION, EXIT)
    yes = WorkflowTransition.objects.get(condition__branch="yes")
    step = workflow_graph.insert_step(project, workflow.pk, yes.pk, **WAIT)
    assert step.order == 3
    assert edges(workflow) == {
        ("Trigger: signup", "Pro?", None, None),
        ("Pro?", "Wait", "yes", None),
        ("Wait", "Done", None, "EVENT"),
        ("Wait", "Done", None, "TIMEOUT"),
    }
    into_wait = WorkflowTransition.objects.get(to_step=step)
    assert into_wait.pk == yes.pk  # the transition kept its branch and now leads to the new step
    workflow_graph.insert_step(project, workflow.pk, into_wait.pk, **MULTI)
    assert ("Plan", "Wait", "pro", None) in edges(workflow)


@pytest.mark.parametrize("step", [EXIT, {"type": "TRIGGER", "name": "t", "config": {}}])
def test_exit_and_trigger_steps_cannot_be_inserted(project, step):
    workflow = make(project, DELAY)
    edge = WorkflowTransition.objects.get(workflow=workflow)
    with pytest.raises(ValidationFailed) as refused:
        workflow_graph.insert_step(project, workflow.pk, edge.pk, **step)
    assert field_errors(refused) == [("type", "custom")]
    assert workflow.steps.count() == 2


# ---------------------------------------------------------------------------------------------
# Workflows: update, duplicate, delete


def test_the_trigger_cannot_move_while_enabled_with_active_executions(project, contact):
    workflow = make(project, DELAY, enabled=True)
    run_at(workflow, named(workflow)["Delay"], contact)
    with pytest.raises(ActiveExecutions):
        workflows.update_workflow(project, workflow.pk, event_name="registered")
    workflows.update_workflow(project, workflow.pk, event_name="signup", name="Same trigger")
    workflows.update_workflow(project, workflow.pk, enabled=False)
    workflows.update_workflow(project, workflow.pk, event_name="registered")
    assert Workflow.objects.get().trigger_config == {"eventName": "registered"}


def test_replacing_the_steps_is_refused_while_executions_are_on_them(project, contact):
    workflow = make(project, DELAY)
    run = run_at(workflow, named(workflow)["Delay"], contact)
    with pytest.raises(ActiveExecutions):
        workflows.update_workflow(project, workflow.pk, steps=[EXIT])
    WorkflowExecution.objects.filter(pk=run.pk).update(
        current_step=named(workflow)["Trigger: signup"]
    )
    workflows.update_workflow(project, workflow.pk, steps=[EXIT])  # the trigger stays
    assert edges(workflow) == {("Trigger: signup", "Done", None, None)}


def test_duplicate_copies_the_graph_disabled(project):
    workflow = make(
        project, CONDITION, WAIT, EXIT, name="n" * 100, enabled=True, allow_reentry=True
    )
    add(project, workflow, DELAY, position={"x": 9, "y": 9}, auto_connect=False)
    copy = workflows.duplicate_workflow(project, workflow.pk)
    assert copy.name == "n" * 93 + " (Copy)"
    assert (copy.enabled, copy.allow_reentry, copy.trigger_config) == (
        False,
        True,
        {"eventName": "signup"},
    )
    assert edges(copy) == edges(workflow)

    def steps_of(w) -> set[tuple]:
        rows = WorkflowStep.objects.filter(workflow=w)
        return {(s.name, s.type, str(s.config), str(s.position), s.order) for s in rows}

    assert steps_of(copy) == steps_of(workflow) and len(steps_of(copy)) == 5
    copied = set(WorkflowStep.objects.filter(workflow=copy).values_list("pk", flat=True))
    assert not copied & set(
        WorkflowStep.objects.filter(workflow=workflow).values_list("pk", flat=True)
    )
    assert set(
        WorkflowTransition.objects.filter(workflow=copy).values_list("project", flat=True)
    ) == {project.pk}


def test_a_workflow_with_active_executions_cannot_be_deleted(project, contact):
    workflow = make(project, DELAY)
    run = run_at(workflow, named(workflow)["Delay"], contact)
    with pytest.raises(ActiveExecutions) as refused:
        workflows.delete_workflow(project, workflow.pk)
    assert refused.value.details == {"activeExecutions": 1}
    executions.cancel_execution(project, workflow.pk, run.pk)
    workflows.delete_workflow(project, workflow.pk)
    assert not Workflow.objects.exists()
    assert not WorkflowExecution.objects.exists() and not WorkflowTransition.objects.exists()


# ---------------------------------------------------------------------------------------------
# Concurrent edits of one workflow (PostgreSQL)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_auto_connected_steps_form_one_chain(project):
    workflow = make(project)

    def add_one():
        return add(project, workflow, {**DELAY, "name": f"d{uuid.uuid4().hex[:6]}"}).pk

    run_at_once(add_one, 8)
    outgoing = {}
    for edge in WorkflowTransition.objects.filter(workflow=workflow):
        outgoing.setdefault(edge.from_step_id, []).append(edge.to_step_id)
    assert len(outgoing) == 8 and all(len(targets) == 1 for targets in outgoing.values())
    targets = [t for ts in outgoing.values() for t in ts]
    assert len(set(targets)) == 8  # a chain: every step but the trigger is entered exactly once
