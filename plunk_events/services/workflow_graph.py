"""Editing a workflow's graph: its steps are nodes, its transitions edges.

Rules. One TRIGGER step per workflow, made with it and never deleted. Leaving a CONDITION
step, one transition per branch; leaving a WAIT_FOR_EVENT step, one per outcome (EVENT, and
TIMEOUT if it has a timeout); leaving any other step, one; leaving an EXIT step, none; into
the TRIGGER step, none; and no cycle. A broken rule is a 422 naming the field.

Guards (409 ``ACTIVE_EXECUTIONS``). Deleting steps or transitions, or replacing the steps,
is refused while RUNNING or WAITING executions are on a step it removes or cuts off, enabled
or not (a disabled workflow's runs keep running, and would be stranded). Changing the trigger
or a step's config is refused while the workflow is enabled and has active executions.

Locks. Every edit locks the workflow row (``FOR NO KEY UPDATE``: new executions can still be
inserted), so edits of one workflow run one at a time; the rows of steps about to be deleted
are locked ``FOR UPDATE`` before the guard counts, so a run cannot move onto them unseen.
Edits that reference event names (the trigger, WAIT_FOR_EVENT steps) first take the project
lock of :func:`references.guard_new_references`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ..models import Project, Workflow, WorkflowExecution, WorkflowStep, WorkflowTransition
from ..workflow_models import ACTIVE_STATUSES
from . import references
from .automation import finishing_abandoned_deletions
from .db import db_for_write, project_object_or_404
from .errors import Conflict, FieldErrorList, NotFound, ValidationFailed, uuid_or_404
from .step_config import (
    check_position,
    check_step_config,
    check_step_name,
    check_step_type,
    condition_branches,
    has_timeout,
)
from .validation import MISSING, enum_message, type_error

Type = WorkflowStep.Type
Outcome = WorkflowTransition.WaitOutcome
#: Vertical distance between the steps of a chain laid out in a column.
ROW_HEIGHT = 150


class ActiveExecutions(Conflict):
    """409: the edit would change or strand RUNNING/WAITING executions."""

    code = "ACTIVE_EXECUTIONS"

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message, details={"activeExecutions": count})


@dataclass
class Graph:
    """A workflow's steps (by id, in creation order) and transitions, loaded for an edit."""

    steps: dict[uuid.UUID, WorkflowStep]
    transitions: list[WorkflowTransition]

    def outgoing(self, step_id: Any) -> list[WorkflowTransition]:
        edges = [t for t in self.transitions if t.from_step_id == step_id]
        return sorted(edges, key=lambda t: (t.priority, t.created_at, t.id))

    def incoming(self, step_id: Any) -> list[WorkflowTransition]:
        return [t for t in self.transitions if t.to_step_id == step_id]

    def downstream(self, step_id: Any, *, skip: Any = None) -> set[uuid.UUID]:
        """``step_id`` and every step reachable from it (not through transition ``skip``)."""
        seen, queue = {step_id}, [step_id]
        while queue:
            current = queue.pop()
            for edge in self.transitions:
                if edge.from_step_id == current and edge.pk != skip and edge.to_step_id not in seen:
                    seen.add(edge.to_step_id)
                    queue.append(edge.to_step_id)
        return seen

    def last_leaf(self) -> WorkflowStep | None:
        """The newest step that leads nowhere yet and may lead on (not an EXIT)."""
        leaves = [s for s in self.steps.values() if s.type != Type.EXIT and not self.outgoing(s.pk)]
        return leaves[-1] if leaves else None

    @property
    def next_order(self) -> int:
        return max((s.order for s in self.steps.values()), default=-1) + 1


def load_graph(workflow: Workflow, alias: str) -> Graph:
    steps = WorkflowStep.objects.using(alias).filter(
        project_id=workflow.project_id, workflow=workflow
    )
    edges = WorkflowTransition.objects.using(alias).filter(
        project_id=workflow.project_id, workflow=workflow
    )
    return Graph(
        steps={s.pk: s for s in steps.order_by("order", "id")},
        transitions=list(edges.order_by("created_at", "id")),
    )


def lock_workflow(project: Project, workflow_id: Any, alias: str, *, delete=False) -> Workflow:
    """The workflow row, locked for the edit (``FOR UPDATE`` when it is to be deleted, which
    also holds back new executions), or 404."""
    rows = Workflow.objects.using(alias).select_for_update(no_key=not delete)
    return project_object_or_404(rows, project, workflow_id, "Workflow")


def get_step(graph: Graph, step_id: Any) -> WorkflowStep:
    step = graph.steps.get(uuid_or_404("WorkflowStep", step_id))
    if step is None:
        raise NotFound("WorkflowStep", step_id)
    return step


def count_active(workflow: Workflow, alias: str, step_ids: Iterable[Any] | None = None) -> int:
    runs = WorkflowExecution.objects.using(alias).filter(
        project_id=workflow.project_id, workflow=workflow, status__in=ACTIVE_STATUSES
    )
    if step_ids is not None:
        runs = runs.filter(current_step_id__in=list(step_ids))
    return runs.count()


def lock_steps(workflow: Workflow, alias: str, step_ids: Iterable[Any]) -> None:
    """Lock steps about to be deleted, so no run moves onto them between count and delete."""
    rows = WorkflowStep.objects.using(alias).select_for_update()
    list(rows.filter(project_id=workflow.project_id, pk__in=sorted(step_ids)).values_list("pk"))


def guard_names(project: Project, steps: Iterable[dict], trigger: dict | None = None) -> None:
    """The reference guard, for the event names these steps (and trigger) reference."""
    names = references.workflow_event_names(trigger, steps)
    if names:
        references.guard_new_references(project, names)


# ---------------------------------------------------------------------------------------------
# Edges


def edges_into(parent: WorkflowStep, child_id: Any) -> list[WorkflowTransition]:
    """The transitions that make ``child_id`` follow ``parent`` in a chain: a CONDITION by its
    first branch (``yes``), a WAIT_FOR_EVENT by both of its outcomes, an EXIT not at all."""
    if parent.type == Type.EXIT:
        return []

    def edge(**kwargs: Any) -> WorkflowTransition:
        return WorkflowTransition(
            project_id=parent.project_id,
            workflow_id=parent.workflow_id,
            from_step_id=parent.pk,
            to_step_id=child_id,
            **kwargs,
        )

    if parent.type == Type.CONDITION:
        return [edge(condition={"branch": condition_branches(parent.config)[0]})]
    if parent.type == Type.WAIT_FOR_EVENT:
        edges = [edge(wait_outcome=Outcome.EVENT)]
        if has_timeout(parent.config):
            edges.append(edge(wait_outcome=Outcome.TIMEOUT))
        return edges
    return [edge()]


def create_chain(
    alias: str, workflow: Workflow, steps: list[dict], *, after: WorkflowStep | None, order: int
) -> list[WorkflowStep]:
    """Create ``steps`` as a chain (laid out in a column) following ``after``."""
    made = [
        WorkflowStep(
            id=uuid.uuid4(),
            project_id=workflow.project_id,
            workflow=workflow,
            order=order + index,
            position={"x": 0, "y": (order + index) * ROW_HEIGHT},
            **step,
        )
        for index, step in enumerate(steps)
    ]
    WorkflowStep.objects.using(alias).bulk_create(made)
    chain = [after, *made] if after is not None else made
    pairs = zip(chain, chain[1:], strict=False)
    edges = [edge for parent, child in pairs for edge in edges_into(parent, child.pk)]
    WorkflowTransition.objects.using(alias).bulk_create(edges)
    return made


# ---------------------------------------------------------------------------------------------
# Steps


def _new_step_values(
    type: Any,  # noqa: A002 (Plunk's field name)
    name: Any,
    config: Any,
    position: Any,
    *,
    refused: tuple[str, str] | None = None,
    project: Project | None = None,
) -> dict[str, Any]:
    """A validated new step, or 422. ``refused`` is a ``(type, reason)`` this route rejects."""
    errors = FieldErrorList()
    step_type = check_step_type(errors, type)
    if step_type is not None and refused is not None and step_type == refused[0]:
        errors.add("type", refused[1], "custom")
        step_type = None
    values = {"type": step_type, "name": check_step_name(errors, name)}
    if position is not None:
        values["position"] = check_position(errors, position)
    if step_type is not None:
        values["config"] = check_step_config(errors, step_type, config, "config", project=project)
    if errors:
        raise ValidationFailed(errors)
    return values


@finishing_abandoned_deletions
def add_step(
    project: Project,
    workflow_id: Any,
    *,
    type: str,  # noqa: A002 (Plunk's field name)
    name: str,
    config: dict | None = None,
    position: dict | None = None,
    auto_connect: bool = True,
) -> WorkflowStep:
    """Add a step; with ``auto_connect`` the newest step that leads nowhere yet leads to it."""
    values = _new_step_values(type, name, config, position, project=project)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        guard_names(project, [values])
        workflow = lock_workflow(project, workflow_id, alias)
        graph = load_graph(workflow, alias)
        step = WorkflowStep.objects.using(alias).create(
            project=project, workflow=workflow, order=graph.next_order, **values
        )
        leaf = graph.last_leaf() if auto_connect else None
        if leaf is not None:
            WorkflowTransition.objects.using(alias).bulk_create(edges_into(leaf, step.pk))
    return step


def _config_fits_transitions(graph: Graph, step: WorkflowStep, config: dict) -> FieldErrorList:
    """A config change must not leave transitions the step can no longer take."""
    errors = FieldErrorList()
    edges = graph.outgoing(step.pk)
    if step.type == Type.WAIT_FOR_EVENT and not has_timeout(config):
        if any(e.wait_outcome == Outcome.TIMEOUT for e in edges):
            message = "A TIMEOUT transition leaves this step: delete it before removing the timeout"
            errors.add("config.timeout", message, "custom")
    elif step.type == Type.CONDITION:
        branches = condition_branches(config)
        stale = sorted(
            {
                e.condition.get("branch")
                for e in edges
                if isinstance(e.condition, dict) and e.condition.get("branch") not in branches
            },
            key=str,
        )
        if stale:
            listed = ", ".join(str(b) for b in stale)
            message = f"Transitions leave this step by branches it would no longer have ({listed}): delete them first"
            errors.add("config", message, "custom")
    return errors


@finishing_abandoned_deletions
def update_step(
    project: Project,
    workflow_id: Any,
    step_id: Any,
    *,
    name: Any = MISSING,
    position: Any = MISSING,
    config: Any = MISSING,
) -> WorkflowStep:
    """Rename, move or reconfigure a step (its type never changes). A config change is refused
    (409) while the workflow is enabled and has active executions; the TRIGGER step's config
    follows the workflow's ``eventName`` and is changed through the workflow."""
    errors = FieldErrorList()
    changes: dict[str, Any] = {}
    if name is not MISSING:
        changes["name"] = check_step_name(errors, name)
    if position is not MISSING:
        changes["position"] = check_position(errors, position)
    if errors:
        raise ValidationFailed(errors)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        if config is not MISSING:
            references.lock_project(project)  # before the workflow's lock, as every edit
        workflow = lock_workflow(project, workflow_id, alias)
        graph = load_graph(workflow, alias)
        step = get_step(graph, step_id)
        if config is not MISSING:
            if step.type == Type.TRIGGER:
                errors.add(
                    "config",
                    "The TRIGGER step's config follows the workflow's eventName: change that",
                    "custom",
                )
                raise ValidationFailed(errors)
            config = check_step_config(errors, step.type, config, "config", project=project)
            if not errors:
                errors.extend(_config_fits_transitions(graph, step, config))
            if errors:
                raise ValidationFailed(errors)
            active = count_active(workflow, alias) if workflow.enabled else 0
            if config != step.config and active:
                raise ActiveExecutions(
                    f"Cannot change the step's config while the enabled workflow has {active} "
                    "active execution(s). Disable it first or wait for them to complete; the "
                    "name and position can still change.",
                    active,
                )
            guard_names(project, [{"type": step.type, "config": config}])
            changes["config"] = config
        for key, value in changes.items():
            setattr(step, key, value)
        if changes:
            step.save(using=alias, update_fields=list(changes))
    return step


def delete_step(project: Project, workflow_id: Any, step_id: Any, *, splice: bool = False) -> None:
    """Delete a step and every step after it; with ``splice``, only the step, its parents
    leading to its child instead (not for CONDITION and WAIT_FOR_EVENT steps, whose children
    are several). 409 while executions are on a step that goes."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        workflow = lock_workflow(project, workflow_id, alias)
        graph = load_graph(workflow, alias)
        step = get_step(graph, step_id)
        errors = FieldErrorList()
        if step.type == Type.TRIGGER:
            errors.add("stepId", "The TRIGGER step cannot be deleted", "custom")
        elif splice and step.type in (Type.CONDITION, Type.WAIT_FOR_EVENT):
            message = (
                f"A {step.type} step leads to several steps, so it cannot be spliced out: "
                "delete it with the steps after it, or rewire its transitions first"
            )
            errors.add("splice", message, "custom")
        if errors:
            raise ValidationFailed(errors)
        doomed = {step.pk} if splice else graph.downstream(step.pk)
        lock_steps(workflow, alias, doomed)
        active = count_active(workflow, alias, doomed)
        if active:
            where = "on it" if splice else "on it or on a step after it"
            raise ActiveExecutions(
                f'Cannot delete step "{step.name}": {active} active execution(s) are {where}. '
                "Wait for them to complete or cancel them first.",
                active,
            )
        if splice:
            child = next(iter(graph.outgoing(step.pk)), None)
            if child is not None:
                incoming = [t.pk for t in graph.incoming(step.pk)]
                WorkflowTransition.objects.using(alias).filter(pk__in=incoming).update(
                    to_step_id=child.to_step_id
                )
        WorkflowStep.objects.using(alias).filter(
            project_id=workflow.project_id, pk__in=doomed
        ).delete()


# ---------------------------------------------------------------------------------------------
# Transitions


def _branch(errors: FieldErrorList, condition: Any) -> str | None:
    if condition is None:
        errors.add(
            "condition", "Required: the {branch} of the CONDITION step it leaves", "invalid_type"
        )
        return None
    if not isinstance(condition, dict):
        type_error(errors, "condition", "object", condition)
        return None
    branch = condition.get("branch", MISSING)
    if not isinstance(branch, str):
        type_error(errors, "condition.branch", "string", branch)
        return None
    return branch


def _transition_errors(
    graph: Graph, source: WorkflowStep, target: WorkflowStep, condition: Any, outcome: Any
) -> FieldErrorList:
    errors = FieldErrorList()
    edges = graph.outgoing(source.pk)
    if source.type == Type.EXIT:
        message = "An EXIT step ends the flow: it cannot lead to another step"
        errors.add("fromStepId", message, "custom")
    if target.type == Type.TRIGGER:
        errors.add("toStepId", "No step can lead to the TRIGGER step", "custom")
    if outcome is not None and outcome not in Outcome.values:
        if isinstance(outcome, str):
            errors.add("waitOutcome", enum_message(Outcome.values, outcome), "invalid_enum_value")
        else:
            type_error(errors, "waitOutcome", "string", outcome)
        outcome = None
    if source.type == Type.CONDITION:
        if outcome is not None:
            errors.add("waitOutcome", "Only WAIT_FOR_EVENT steps route by waitOutcome", "custom")
        branch = _branch(errors, condition)
        branches = condition_branches(source.config)
        if branch is not None and branch not in branches:
            errors.add("condition.branch", enum_message(branches, branch), "invalid_enum_value")
        elif branch is not None and any(
            isinstance(e.condition, dict) and e.condition.get("branch") == branch for e in edges
        ):
            message = f'A transition for the "{branch}" branch already leaves this step'
            errors.add("condition.branch", message, "custom")
    elif source.type == Type.WAIT_FOR_EVENT:
        if condition is not None:
            message = "A WAIT_FOR_EVENT step routes by waitOutcome, not by condition"
            errors.add("condition", message, "custom")
        if outcome is None and "waitOutcome" not in {e["field"] for e in errors}:
            errors.add("waitOutcome", "Required: EVENT or TIMEOUT", "invalid_type")
        elif outcome == Outcome.TIMEOUT and not has_timeout(source.config):
            message = "This step has no timeout, so it never takes a TIMEOUT transition"
            errors.add("waitOutcome", message, "custom")
        elif outcome is not None and any(e.wait_outcome == outcome for e in edges):
            message = f"A transition for the {outcome} outcome already leaves this step"
            errors.add("waitOutcome", message, "custom")
    else:
        if condition is not None:
            errors.add("condition", "Only CONDITION steps route by condition", "custom")
        if outcome is not None:
            errors.add("waitOutcome", "Only WAIT_FOR_EVENT steps route by waitOutcome", "custom")
        if edges and source.type != Type.EXIT:
            message = (
                f'"{source.name}" already leads to another step: delete that transition first, '
                "or branch with a CONDITION step"
            )
            errors.add("fromStepId", message, "custom")
    if not errors and source.pk in graph.downstream(target.pk):
        errors.add("toStepId", "This transition would close a loop", "custom")
    return errors


def create_transition(
    project: Project,
    workflow_id: Any,
    *,
    from_step_id: Any,
    to_step_id: Any,
    condition: dict | None = None,
    wait_outcome: str | None = None,
    priority: int = 0,
) -> WorkflowTransition:
    """Connect two steps of the workflow (404 for steps it does not have, 422 for a
    transition its rules forbid)."""
    if str(from_step_id) == str(to_step_id):
        errors = FieldErrorList()
        errors.add("toStepId", "A step cannot lead to itself", "custom")
        raise ValidationFailed(errors)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        workflow = lock_workflow(project, workflow_id, alias)
        graph = load_graph(workflow, alias)
        source, target = get_step(graph, from_step_id), get_step(graph, to_step_id)
        errors = _transition_errors(graph, source, target, condition, wait_outcome)
        if errors:
            raise ValidationFailed(errors)
        branch = condition.get("branch") if isinstance(condition, dict) else None
        return WorkflowTransition.objects.using(alias).create(
            project=project,
            workflow=workflow,
            from_step=source,
            to_step=target,
            condition={"branch": branch} if branch is not None else None,
            wait_outcome=wait_outcome,
            priority=priority,
        )


def _transition(workflow: Workflow, alias: str, transition_id: Any) -> WorkflowTransition:
    rows = WorkflowTransition.objects.using(alias).filter(workflow=workflow)
    return project_object_or_404(rows, workflow.project, transition_id, "WorkflowTransition")


def delete_transition(project: Project, workflow_id: Any, transition_id: Any) -> None:
    """Disconnect two steps; 409 while executions are on the target or a step after it."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        workflow = lock_workflow(project, workflow_id, alias)
        edge = _transition(workflow, alias, transition_id)
        affected = load_graph(workflow, alias).downstream(edge.to_step_id, skip=edge.pk)
        lock_steps(workflow, alias, affected)
        active = count_active(workflow, alias, affected)
        if active:
            raise ActiveExecutions(
                f"Cannot delete the transition: {active} active execution(s) are on its target "
                "or on a step after it. Wait for them to complete or cancel them first.",
                active,
            )
        edge.delete(using=alias)


@finishing_abandoned_deletions
def insert_step(
    project: Project,
    workflow_id: Any,
    transition_id: Any,
    *,
    type: str,  # noqa: A002 (Plunk's field name)
    name: str,
    config: dict | None = None,
    position: dict | None = None,
) -> WorkflowStep:
    """Split a transition ``A → B`` into ``A → new → B``: the transition keeps its branch or
    outcome and now leads to the new step, which leads on to B (as :func:`add_step` chains)."""
    refused = (Type.EXIT, "An EXIT step ends the flow: it cannot be inserted between two steps")
    values = _new_step_values(type, name, config, position, refused=refused, project=project)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        guard_names(project, [values])
        workflow = lock_workflow(project, workflow_id, alias)
        edge = _transition(workflow, alias, transition_id)
        graph = load_graph(workflow, alias)
        step = WorkflowStep.objects.using(alias).create(
            project=project, workflow=workflow, order=graph.next_order, **values
        )
        target = edge.to_step_id
        edge.to_step = step
        edge.save(using=alias, update_fields=["to_step"])
        WorkflowTransition.objects.using(alias).bulk_create(edges_into(step, target))
    return step
