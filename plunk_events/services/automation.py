"""Segments and workflows: the writes that can add references to event names.

Every create, update and delete runs in one transaction that first calls
:func:`references.guard_new_references` with the event names the new state references. That
takes the project lock the delete guard of ``DELETE /events/<name>`` takes, so a reference can
never appear between the guard's check and the deletion, and names being deleted are refused
(409), unless the deletion's worker is gone: then the write finishes it and goes ahead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Prefetch

from ..models import Project, Segment, Workflow, WorkflowStep
from . import deletion, references, segment_query
from .conditions import validate_condition
from .db import db_for_write, project_object_or_404
from .errors import FieldErrorList, ValidationFailed
from .reevaluation import segment_written
from .validation import MISSING, check_event_name, enum_message, type_error

#: Longest WAIT_FOR_EVENT timeout and DELAY, in seconds (one year / 365 days, as Plunk).
MAX_WAIT_TIMEOUT_SECONDS = 31_536_000
MAX_DELAY_SECONDS = 365 * 24 * 3600
DELAY_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
STEP_NAME_MAX_LENGTH = 100

T = TypeVar("T")


#: Tries of a write that meets abandoned deletions (a new DELETE may start in between).
RESUME_ATTEMPTS = 3


def finish_abandoned_deletions(refused: references.DeletionRunning) -> bool:
    """Finish the delete jobs that refused a write, if every one of their workers is gone.

    A killed worker leaves its job RUNNING until its lease (``DELETE_LEASE_SECONDS``) runs out;
    from then on the first write naming it takes the job over and finishes it, synchronously,
    in bounded batches. False, doing nothing, while any of the jobs has a live worker, or if
    another resumer claimed one first: the write is then refused with 409 as it was.
    """
    if not refused.abandoned:
        return False
    return all(deletion.resume_deletion(job) is not None for job in refused.jobs)


def _finishing_abandoned_deletions(write: Callable[..., T]) -> Callable[..., T]:
    """Run a segment or workflow write; when a deletion job whose worker is gone refuses it,
    finish that job (outside the write's transaction) and run the write again."""

    @functools.wraps(write)
    def run(*args: Any, **kwargs: Any) -> T:
        for _ in range(RESUME_ATTEMPTS - 1):
            try:
                return write(*args, **kwargs)
            except references.DeletionRunning as refused:
                if not finish_abandoned_deletions(refused):
                    raise
        return write(*args, **kwargs)

    return run


# ---------------------------------------------------------------------------------------------
# Segments


def get_segment(project: Project, segment_id: Any, *, using: str | None = None) -> Segment:
    return project_object_or_404(Segment.objects.using(using), project, segment_id, "Segment")


def segment_condition(segment_type: str, condition: Any) -> dict | None:
    """The condition to store: ``None`` for STATIC segments, a valid tree for DYNAMIC ones."""
    if segment_type == Segment.Type.STATIC:
        return None
    if condition is None:
        raise ValidationFailed(
            [
                {
                    "field": "condition",
                    "message": "Condition is required for DYNAMIC segments",
                    "code": "invalid_type",
                    "received": "null",
                }
            ]
        )
    errors = validate_condition(condition)
    if errors:
        raise ValidationFailed(errors)
    return condition


def check_segment_references(
    project: Project, condition: dict | None, *, segment_id: Any = None, using: str | None = None
) -> None:
    """422 unless every ``segment.<id>`` of ``condition`` is another segment of ``project`` that
    does not lead back to this one (``segment_id``) or into a cycle."""
    errors = segment_query.reference_errors(project, condition, segment_id=segment_id, using=using)
    if errors:
        raise ValidationFailed(errors)


def live_member_count(project: Project, condition: dict, *, segment_id: Any = None) -> int:
    """The contacts a DYNAMIC condition matches now (``memberCount`` on create and update).

    Counted before the write's transaction, which then holds no lock for the count's time.
    """
    check_segment_references(project, condition, segment_id=segment_id)
    return segment_query.contacts_matching(project, condition).count()


@_finishing_abandoned_deletions
def create_segment(
    project: Project,
    *,
    name: str,
    description: str | None = None,
    type: str = Segment.Type.DYNAMIC,  # noqa: A002 (Plunk's field name)
    condition: dict | None = None,
    track_membership: bool = False,
) -> Segment:
    condition = segment_condition(type, condition)
    member_count = 0 if condition is None else live_member_count(project, condition)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.guard_new_references(project, references.condition_event_names(condition))
        check_segment_references(project, condition, using=alias)  # again, under the lock
        segment = Segment.objects.using(alias).create(
            project=project,
            name=name,
            description=description,
            type=type,
            condition=condition,
            track_membership=track_membership,
            member_count=member_count,
        )
        segment_written(segment, using=alias)  # computes a tracked segment after the commit
        return segment


SEGMENT_FIELDS = ("name", "description", "type", "condition", "track_membership")


@_finishing_abandoned_deletions
def update_segment(project: Project, segment_id: Any, **changes: Any) -> Segment:
    """Apply ``changes`` (any of ``SEGMENT_FIELDS``); a condition is re-validated whenever the
    segment ends up DYNAMIC, and dropped when it ends up STATIC."""
    unknown = set(changes) - set(SEGMENT_FIELDS)
    if unknown:
        raise TypeError(f"unknown segment fields: {sorted(unknown)}")
    counted = _recount(project, segment_id, changes)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)
        segment = get_segment(project, segment_id, using=alias)
        for key, value in changes.items():
            setattr(segment, key, value)
        if "condition" in changes or "type" in changes:
            segment.condition = segment_condition(segment.type, segment.condition)
            check_segment_references(project, segment.condition, segment_id=segment.pk, using=alias)
            if counted is not None and counted[0] == segment.condition:
                segment.member_count = counted[1]
        references.guard_new_references(
            project, references.condition_event_names(segment.condition)
        )
        segment.save(using=alias)
        segment_written(segment, using=alias)
    return segment


def _recount(project: Project, segment_id: Any, changes: dict) -> tuple[dict, int] | None:
    """``(condition, live count)`` when ``changes`` give a DYNAMIC segment a condition (raising
    the 404 or 422 the write would), else None."""
    if "condition" not in changes and "type" not in changes:
        return None
    segment = get_segment(project, segment_id)
    condition = segment_condition(
        changes.get("type", segment.type), changes.get("condition", segment.condition)
    )
    if condition is None:
        return None
    return condition, live_member_count(project, condition, segment_id=segment.pk)


def delete_segment(project: Project, segment_id: Any) -> None:
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)  # deletes serialise with the delete guard too
        get_segment(project, segment_id, using=alias).delete(using=alias)


# ---------------------------------------------------------------------------------------------
# Workflows


def get_workflow(project: Project, workflow_id: Any, *, using: str | None = None) -> Workflow:
    steps = Prefetch("steps", queryset=WorkflowStep.objects.using(using).order_by("order"))
    workflows = Workflow.objects.using(using).prefetch_related(steps)
    return project_object_or_404(workflows, project, workflow_id, "Workflow")


def _check_step_config(errors: FieldErrorList, step_type: str, config: dict, path: str) -> dict:
    """Type-specific rules; returns the config to store (WAIT_FOR_EVENT's name trimmed)."""
    if step_type == WorkflowStep.Type.WAIT_FOR_EVENT:
        name = check_event_name(
            errors, config.get("eventName", MISSING), f"{path}.eventName", trim=True
        )
        timeout = config.get("timeout")
        if timeout is not None:
            if not isinstance(timeout, int) or isinstance(timeout, bool):
                type_error(errors, f"{path}.timeout", "integer", timeout)
            elif not 0 < timeout <= MAX_WAIT_TIMEOUT_SECONDS:
                errors.add(
                    f"{path}.timeout",
                    f"Timeout must be between 1 and {MAX_WAIT_TIMEOUT_SECONDS} seconds",
                    "too_big" if timeout > 0 else "too_small",
                )
        if name is not None:
            config = {**config, "eventName": name}
    elif step_type == WorkflowStep.Type.DELAY:
        amount = config.get("amount", MISSING)
        unit = config.get("unit", MISSING)
        if not isinstance(amount, int | float) or isinstance(amount, bool):
            type_error(errors, f"{path}.amount", "number", amount)
            amount = None
        elif amount <= 0:
            errors.add(f"{path}.amount", "Number must be greater than 0", "too_small")
            amount = None
        if unit not in DELAY_UNITS:
            if isinstance(unit, str):
                errors.add(f"{path}.unit", enum_message(DELAY_UNITS, unit), "invalid_enum_value")
            else:
                type_error(errors, f"{path}.unit", "string", unit)
        elif amount is not None and amount * DELAY_UNITS[unit] > MAX_DELAY_SECONDS:
            errors.add(f"{path}.amount", "Delay must be at most 365 days", "too_big")
    return config


def validate_steps(steps: Any, field: str = "steps") -> tuple[list[dict], list[dict]]:
    """Check the steps that follow the trigger; returns ``(steps to store, errors)``.

    The TRIGGER step is made from the workflow's ``eventName``, so none may be sent.
    """
    errors = FieldErrorList()
    if not isinstance(steps, list):
        type_error(errors, field, "array", steps)
        return [], list(errors)
    clean = []
    for index, step in enumerate(steps):
        path = f"{field}.{index}"
        if not isinstance(step, dict):
            type_error(errors, path, "object", step)
            continue
        step_type = step.get("type", MISSING)
        if step_type == WorkflowStep.Type.TRIGGER:
            errors.add(
                f"{path}.type",
                "The TRIGGER step is created from eventName; send only the steps after it",
                "custom",
            )
        elif step_type not in WorkflowStep.Type.values:
            if isinstance(step_type, str):
                errors.add(
                    f"{path}.type",
                    enum_message(WorkflowStep.Type.values, step_type),
                    "invalid_enum_value",
                )
            else:
                type_error(errors, f"{path}.type", "string", step_type)
        name = step.get("name", MISSING)
        if not isinstance(name, str):
            type_error(errors, f"{path}.name", "string", name)
        elif not name.strip() or len(name) > STEP_NAME_MAX_LENGTH:
            errors.add(
                f"{path}.name",
                f"String must contain 1 to {STEP_NAME_MAX_LENGTH} character(s)",
                "too_big" if name.strip() else "too_small",
            )
        config = step.get("config")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            type_error(errors, f"{path}.config", "object", config)
            continue
        if isinstance(step_type, str):
            config = _check_step_config(errors, step_type, config, f"{path}.config")
        clean.append({"type": step_type, "name": name, "config": config})
    return clean, list(errors)


def _steps_or_raise(steps: Iterable[dict]) -> list[dict]:
    clean, errors = validate_steps(list(steps))
    if errors:
        raise ValidationFailed(errors)
    return clean


def _event_name_or_raise(value: Any) -> str:
    errors = FieldErrorList()
    name = check_event_name(errors, value, "eventName", trim=True)
    if errors:
        raise ValidationFailed(errors)
    return name


def _trigger_step_values(event_name: str) -> dict[str, Any]:
    return {
        "type": WorkflowStep.Type.TRIGGER,
        "name": f"Trigger: {event_name}"[:STEP_NAME_MAX_LENGTH],
        "config": {"eventName": event_name},
    }


def _create_steps(alias: str, workflow: Workflow, steps: list[dict], first_order: int) -> None:
    WorkflowStep.objects.using(alias).bulk_create(
        [
            WorkflowStep(project_id=workflow.project_id, workflow=workflow, order=order, **step)
            for order, step in enumerate(steps, start=first_order)
        ]
    )


@_finishing_abandoned_deletions
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
    """An EVENT workflow on ``event_name`` (trimmed) with its automatic TRIGGER step first."""
    event_name = _event_name_or_raise(event_name)
    steps = _steps_or_raise(steps)
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
        _create_steps(alias, workflow, [_trigger_step_values(event_name), *steps], first_order=0)
    return get_workflow(project, workflow.pk, using=alias)


WORKFLOW_FIELDS = ("name", "description", "enabled", "allow_reentry")


@_finishing_abandoned_deletions
def update_workflow(
    project: Project,
    workflow_id: Any,
    *,
    event_name: str | None = None,
    steps: Iterable[dict] | None = None,
    **changes: Any,
) -> Workflow:
    """Apply ``changes`` (any of ``WORKFLOW_FIELDS``); a new ``event_name`` re-points the trigger
    and its TRIGGER step; ``steps`` replace every step after the trigger."""
    unknown = set(changes) - set(WORKFLOW_FIELDS)
    if unknown:
        raise TypeError(f"unknown workflow fields: {sorted(unknown)}")
    if event_name is not None:
        event_name = _event_name_or_raise(event_name)
    if steps is not None:
        steps = _steps_or_raise(steps)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)
        workflow = get_workflow(project, workflow_id, using=alias)
        current_steps = list(workflow.steps.all())
        if event_name is not None:
            workflow.trigger_type = Workflow.TriggerType.EVENT
            workflow.trigger_config = {"eventName": event_name}
        kept_steps = steps
        if kept_steps is None:
            kept_steps = [
                {"type": s.type, "config": s.config}
                for s in current_steps
                if s.type != WorkflowStep.Type.TRIGGER
            ]
        references.guard_new_references(
            project, references.workflow_event_names(workflow.trigger_config, kept_steps)
        )
        for key, value in changes.items():
            setattr(workflow, key, value)
        workflow.save(using=alias)
        workflow_steps = WorkflowStep.objects.using(alias).filter(
            project=project, workflow=workflow
        )
        if event_name is not None:
            trigger = _trigger_step_values(event_name)
            updated = workflow_steps.filter(type=WorkflowStep.Type.TRIGGER).update(
                name=trigger["name"], config=trigger["config"]
            )
            if not updated:
                _create_steps(alias, workflow, [trigger], first_order=0)
        if steps is not None:
            workflow_steps.exclude(type=WorkflowStep.Type.TRIGGER).delete()
            _create_steps(alias, workflow, steps, first_order=1)
    return get_workflow(project, workflow.pk, using=alias)


def delete_workflow(project: Project, workflow_id: Any) -> None:
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)  # deletes serialise with the delete guard too
        get_workflow(project, workflow_id, using=alias).delete(using=alias)
