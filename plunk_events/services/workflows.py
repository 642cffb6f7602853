"""Workflows: create (with the ``steps`` convenience: a linear chain), update, delete and
duplicate. Editing a workflow's steps and transitions is :mod:`.workflow_graph`, whose rules,
guards and locks these follow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Prefetch

from ..models import Project, Workflow, WorkflowStep, WorkflowTransition
from . import references
from .automation import finishing_abandoned_deletions
from .db import db_for_write, project_object_or_404
from .errors import FieldErrorList, ValidationFailed
from .step_config import STEP_NAME_MAX_LENGTH, steps_or_raise
from .validation import check_event_name
from .workflow_graph import (
    ActiveExecutions,
    Graph,
    Type,
    count_active,
    create_chain,
    edges_into,
    guard_names,
    load_graph,
    lock_steps,
    lock_workflow,
)

COPY_SUFFIX = " (Copy)"
WORKFLOW_FIELDS = ("name", "description", "enabled", "allow_reentry")


# ---------------------------------------------------------------------------------------------
# Reading


def get_workflow(project: Project, workflow_id: Any, *, using: str | None = None) -> Workflow:
    """The project's workflow with ``steps`` (creation order) and ``transitions`` prefetched."""
    steps = Prefetch("steps", queryset=WorkflowStep.objects.using(using).order_by("order", "id"))
    edges = Prefetch(
        "transitions", queryset=WorkflowTransition.objects.using(using).order_by("created_at", "id")
    )
    workflows = Workflow.objects.using(using).prefetch_related(steps, edges)
    return project_object_or_404(workflows, project, workflow_id, "Workflow")


def get_workflow_row(project: Project, workflow_id: Any, *, using: str | None = None) -> Workflow:
    """The project's workflow alone (no steps), or 404."""
    return project_object_or_404(Workflow.objects.using(using), project, workflow_id, "Workflow")


def _workflows_changed(workflow: Workflow, alias: str) -> None:
    """Tell the runtime, after the commit, that this project's workflows changed (it may
    cache which workflows a name triggers)."""

    def notify() -> None:
        try:
            from . import workflow_runtime  # the runtime module, added with the runtime
        except ImportError:
            return
        changed = getattr(workflow_runtime, "workflows_changed", None)
        if changed is not None:
            changed(workflow.project_id)

    transaction.on_commit(notify, using=alias)


def _trigger_step_values(event_name: str) -> dict[str, Any]:
    return {
        "type": Type.TRIGGER,
        "name": f"Trigger: {event_name}"[:STEP_NAME_MAX_LENGTH],
        "config": {"eventName": event_name},
    }


def _event_name_or_raise(value: Any) -> str:
    errors = FieldErrorList()
    name = check_event_name(errors, value, "eventName", trim=True)
    if errors:
        raise ValidationFailed(errors)
    return name


# ---------------------------------------------------------------------------------------------
# Workflows


@finishing_abandoned_deletions
def create_workflow(
    project: Project,
    *,
    name: str,
    event_name: str,
    description: str | None = None,
    enabled: bool = False,
    allow_reentry: bool = False,
    steps: Iterable[dict] = (),
) -> Workflow:
    """An EVENT workflow on ``event_name`` (trimmed): its TRIGGER step, then ``steps`` as a
    linear chain of transitions."""
    event_name = _event_name_or_raise(event_name)
    steps = steps_or_raise(steps, project=project)
    trigger_config = {"eventName": event_name}
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.guard_new_references(
            project, references.workflow_event_names(trigger_config, steps)
        )
        workflow = Workflow.objects.using(alias).create(
            project=project,
            name=name,
            description=description,
            enabled=enabled,
            trigger_type=Workflow.TriggerType.EVENT,
            trigger_config=trigger_config,
            allow_reentry=allow_reentry,
        )
        create_chain(
            alias, workflow, [_trigger_step_values(event_name), *steps], after=None, order=0
        )
        _workflows_changed(workflow, alias)
    return get_workflow(project, workflow.pk, using=alias)


@finishing_abandoned_deletions
def update_workflow(
    project: Project,
    workflow_id: Any,
    *,
    event_name: str | None = None,
    steps: Iterable[dict] | None = None,
    **changes: Any,
) -> Workflow:
    """Apply ``changes`` (any of ``WORKFLOW_FIELDS``). A new ``event_name`` re-points the trigger
    and its TRIGGER step (409 while enabled with active executions); ``steps`` replace every
    step after the trigger with a new chain (409 while any execution is active)."""
    unknown = set(changes) - set(WORKFLOW_FIELDS)
    if unknown:
        raise TypeError(f"unknown workflow fields: {sorted(unknown)}")
    if event_name is not None:
        event_name = _event_name_or_raise(event_name)
    if steps is not None:
        steps = steps_or_raise(steps, project=project)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)
        workflow = lock_workflow(project, workflow_id, alias)
        graph = load_graph(workflow, alias)
        new_trigger = {"eventName": event_name} if event_name is not None else None
        if new_trigger is not None and (
            workflow.trigger_type != Workflow.TriggerType.EVENT
            or workflow.trigger_config != new_trigger
        ):
            active = count_active(workflow, alias) if workflow.enabled else 0
            if active:
                raise ActiveExecutions(
                    f"Cannot change the trigger while the enabled workflow has {active} active "
                    "execution(s). Disable it first or wait for them to complete; name, "
                    "description and re-entry can still change.",
                    active,
                )
            workflow.trigger_type = Workflow.TriggerType.EVENT
            workflow.trigger_config = new_trigger
        trigger = next((s for s in graph.steps.values() if s.type == Type.TRIGGER), None)
        doomed = [pk for pk, s in graph.steps.items() if s is not trigger]
        if steps is not None and doomed:
            lock_steps(workflow, alias, doomed)
            active = count_active(workflow, alias, doomed)
            if active:
                raise ActiveExecutions(
                    f"Cannot replace the steps while {active} active execution(s) are on them. "
                    "Wait for them to complete or cancel them first.",
                    active,
                )
        kept = steps if steps is not None else [
            {"type": graph.steps[pk].type, "config": graph.steps[pk].config} for pk in doomed
        ]  # fmt: skip
        references.guard_new_references(
            project, references.workflow_event_names(workflow.trigger_config, kept)
        )
        for key, value in changes.items():
            setattr(workflow, key, value)
        workflow.save(using=alias)
        if new_trigger is not None:
            trigger = _repoint_trigger(alias, workflow, graph, trigger, event_name)
        if steps is not None:
            WorkflowStep.objects.using(alias).filter(pk__in=doomed).delete()
            create_chain(alias, workflow, steps, after=trigger, order=graph.next_order)
        _workflows_changed(workflow, alias)
    return get_workflow(project, workflow.pk, using=alias)


def _repoint_trigger(
    alias: str, workflow: Workflow, graph: Graph, trigger: WorkflowStep | None, event_name: str
) -> WorkflowStep:
    """Name and configure the TRIGGER step after ``event_name``; a workflow that lacks one (made
    without the services) gets one, leading to its first step."""
    values = _trigger_step_values(event_name)
    if trigger is not None:
        trigger.name, trigger.config = values["name"], values["config"]
        trigger.save(using=alias, update_fields=["name", "config"])
        return trigger
    roots = [s for s in graph.steps.values() if not graph.incoming(s.pk)]
    (trigger,) = create_chain(alias, workflow, [values], after=None, order=graph.next_order)
    if roots:
        WorkflowTransition.objects.using(alias).bulk_create(edges_into(trigger, roots[0].pk))
    return trigger


def delete_workflow(project: Project, workflow_id: Any) -> None:
    """Delete a workflow with its steps and finished executions; 409 while any is active.

    No project lock: removing references cannot race the delete guard of event names."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        workflow = lock_workflow(project, workflow_id, alias, delete=True)
        active = count_active(workflow, alias)
        if active:
            raise ActiveExecutions(
                f"Cannot delete workflow: it has {active} active execution(s). Wait for them to "
                "complete or cancel them first.",
                active,
            )
        _workflows_changed(workflow, alias)
        workflow.delete(using=alias)


@finishing_abandoned_deletions
def duplicate_workflow(project: Project, workflow_id: Any) -> Workflow:
    """A disabled copy named ``<name> (Copy)``, with copies of its steps and transitions."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)  # before the workflow's lock, as every edit
        source = lock_workflow(project, workflow_id, alias)
        graph = load_graph(source, alias)
        guard_names(
            project,
            [{"type": s.type, "config": s.config} for s in graph.steps.values()],
            source.trigger_config,
        )
        copy = Workflow.objects.using(alias).create(
            project=project,
            name=source.name[: 100 - len(COPY_SUFFIX)] + COPY_SUFFIX,
            description=source.description,
            enabled=False,
            trigger_type=source.trigger_type,
            trigger_config=source.trigger_config,
            allow_reentry=source.allow_reentry,
        )
        ids = {pk: uuid.uuid4() for pk in graph.steps}
        WorkflowStep.objects.using(alias).bulk_create(
            WorkflowStep(
                id=ids[s.pk],
                project=project,
                workflow=copy,
                type=s.type,
                name=s.name,
                config=s.config,
                position=s.position,
                order=s.order,
            )
            for s in graph.steps.values()
        )
        WorkflowTransition.objects.using(alias).bulk_create(
            WorkflowTransition(
                project=project,
                workflow=copy,
                from_step_id=ids[t.from_step_id],
                to_step_id=ids[t.to_step_id],
                condition=t.condition,
                wait_outcome=t.wait_outcome,
                priority=t.priority,
            )
            for t in graph.transitions
        )
    return get_workflow(project, copy.pk, using=alias)
