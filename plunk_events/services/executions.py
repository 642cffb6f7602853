"""Workflow executions: starting one (by hand or for an event), listing, reading, cancelling.

Starting is one ``INSERT … ON CONFLICT DO NOTHING RETURNING id``: the unique
constraints of :class:`~plunk_events.models.WorkflowExecution` decide who enrols, so of any
number of concurrent starts for a (workflow, source event), or for a contact that may not be
in the workflow twice, exactly one inserts a row and the others get nothing back (no error, no
savepoint). After the commit :mod:`.workflow_runtime` is told, and advances the run.

Cancelling is a conditional ``UPDATE`` (only RUNNING and WAITING runs become CANCELLED), so a
run that finishes at the same moment keeps its end state; the cancelled runs' open step rows
are closed as SKIPPED, and tasks still queued for them find nothing to do.
"""

from __future__ import annotations

import importlib.util
import math
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from ..ids import uuid7
from ..models import Contact, Project, Workflow, WorkflowExecution, WorkflowStep
from ..models import WorkflowStepExecution as StepExecution
from ..workflow_models import ACTIVE_STATUSES, OPEN_STEP_STATUSES
from .contacts import get_contact
from .db import db_for_write, prep_values, project_object_or_404
from .errors import Conflict, FieldErrorList, ValidationFailed
from .validation import enum_message
from .workflows import get_workflow_row

Status = WorkflowExecution.Status
#: Largest ``pageSize`` of the execution list.
MAX_PAGE_SIZE = 100
CANCELLED_BY_USER = "Cancelled by user"
CANCELLED_IN_BULK = "Cancelled by user (bulk cancel)"
RUNTIME_MODULE = "plunk_events.services.workflow_runtime"


class NotEnrolled(Conflict):
    """409: the contact may not enter the workflow now (re-entry rules)."""

    code = "ALREADY_ENROLLED"


class WorkflowDisabled(Conflict):
    """409: a disabled workflow enrols nobody, not even by hand."""

    code = "WORKFLOW_DISABLED"


class ExecutionFinished(Conflict):
    """409: the execution is over (COMPLETED, EXITED or FAILED): nothing left to cancel."""

    code = "EXECUTION_FINISHED"


def _runtime_notified(execution_id: uuid.UUID) -> None:
    if importlib.util.find_spec(RUNTIME_MODULE) is None:
        return  # no runtime installed yet: the run waits at its TRIGGER step
    runtime = importlib.import_module(RUNTIME_MODULE)
    runtime.execution_created(execution_id)


def trigger_step_id(workflow: Workflow, *, using: str | None = None) -> uuid.UUID | None:
    steps = WorkflowStep.objects.using(using).filter(
        project_id=workflow.project_id, workflow=workflow, type=WorkflowStep.Type.TRIGGER
    )
    return steps.order_by("order").values_list("pk", flat=True).first()


def enroll(
    workflow: Workflow,
    contact_id: Any,
    *,
    context: Any = None,
    source_event_id: Any = None,
    trigger_id: Any = None,
    using: str | None = None,
    notify: bool = True,
) -> uuid.UUID | None:
    """Insert a RUNNING execution of ``workflow`` for a contact of its project, at its TRIGGER
    step, if the contact may enter; returns its id, or None (nothing written) when it may not.

    It may not when the workflow has no TRIGGER step; when ``source_event_id`` already started
    an execution of it; when the contact has a RUNNING or WAITING one; and, unless
    ``allow_reentry``, when it ever had one. Neither ``enabled`` nor the trigger event is
    checked: the caller chose the workflow. After the commit the runtime is told
    (``workflow_runtime.execution_created``), unless ``notify`` is false (the dispatcher,
    which runs the new execution itself).
    """
    alias = using or db_for_write()
    trigger_id = trigger_id or trigger_step_id(workflow, using=alias)
    if trigger_id is None:
        return None
    contact_id = contact_id if isinstance(contact_id, uuid.UUID) else uuid.UUID(str(contact_id))
    runs = WorkflowExecution.objects.using(alias).filter(
        project_id=workflow.project_id, workflow=workflow, contact_id=contact_id
    )
    # Runs from before re-entry was turned off have no enrollment_key: they count too.
    if not workflow.allow_reentry and runs.exists():
        return None
    connection = connections[alias]
    now = timezone.now()
    execution_id = uuid7()
    values = {
        "id": execution_id,
        "project": workflow.project_id,
        "workflow": workflow.pk,
        "contact": contact_id,
        "status": Status.RUNNING,
        "current_step": trigger_id,
        "context": context,
        "source_event_id": source_event_id,
        "enrollment_key": None if workflow.allow_reentry else contact_id,
        "started_at": now,
        "updated_at": now,
    }
    meta = WorkflowExecution._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(k).column) for k in values)
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns})"
        f" VALUES ({', '.join(['%s'] * len(values))}) ON CONFLICT DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, prep_values(WorkflowExecution, connection, **values))
        inserted = cursor.fetchone() is not None
    if not inserted:
        return None
    # runtime: advanced by services/workflow_runtime.py
    if notify:
        transaction.on_commit(lambda: _runtime_notified(execution_id), using=alias, robust=True)
    return execution_id


def start_execution(
    project: Project,
    workflow_id: Any,
    contact_id: Any,
    context: Any = None,
    source_event_id: Any = None,
) -> WorkflowExecution:
    """Start the workflow for a contact (``POST /workflows/<id>/executions``): 404 for a
    workflow or contact the project does not have, 409 ``WORKFLOW_DISABLED`` while the
    workflow is disabled, 409 ``ALREADY_ENROLLED`` when the re-entry rules keep the contact
    out (or ``source_event_id`` started a run already). ``context`` must be an object."""
    if context is not None and not isinstance(context, dict):
        errors = FieldErrorList()
        errors.add("context", "Expected object", "invalid_type")
        raise ValidationFailed(errors)
    alias = db_for_write()
    workflow = get_workflow_row(project, workflow_id, using=alias)
    contact = get_contact(project, contact_id, using=alias)
    if not workflow.enabled:
        raise WorkflowDisabled("Workflow is not enabled: enable it to start executions")
    with transaction.atomic(using=alias):
        trigger_id = trigger_step_id(workflow, using=alias)
        if trigger_id is None:
            raise Conflict("Workflow has no trigger step", code="NO_TRIGGER_STEP")
        execution_id = enroll(
            workflow,
            contact.pk,
            context=context,
            source_event_id=source_event_id,
            trigger_id=trigger_id,
            using=alias,
        )
        if execution_id is None:
            raise _not_enrolled(workflow, contact, source_event_id, alias)
        return executions(project, using=alias).get(pk=execution_id)


def _not_enrolled(workflow: Workflow, contact: Contact, source_event_id: Any, alias: str):
    runs = WorkflowExecution.objects.using(alias).filter(
        project_id=workflow.project_id, workflow=workflow
    )
    if source_event_id is not None and runs.filter(source_event_id=source_event_id).exists():
        return NotEnrolled("This event already started an execution of the workflow")
    active = runs.filter(contact=contact, status__in=ACTIVE_STATUSES).first()
    if active is not None:
        return NotEnrolled(
            f"Workflow is already running for this contact (execution {active.pk}, "
            f"{active.status})",
            details={"executionId": str(active.pk), "status": active.status},
        )
    last = runs.filter(contact=contact).order_by("-started_at").first()
    status = last.status if last is not None else "unknown"
    return NotEnrolled(
        f"Workflow does not allow re-entry. Contact already has execution ({status})",
        details={"executionId": str(last.pk) if last else None, "status": status},
    )


# ---------------------------------------------------------------------------------------------
# Reading


def executions(project: Project, *, using: str | None = None):
    """The project's executions, with their contact and current step joined."""
    return (
        WorkflowExecution.objects.using(using)
        .filter(project=project)
        .select_related("contact", "current_step")
    )


@dataclass(frozen=True)
class ExecutionPage:
    executions: list[WorkflowExecution]
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.page_size)


def check_status(value: Any, field: str = "status") -> str | None:
    """An execution status filter: absent or empty means any; anything else must be one."""
    if value in (None, ""):
        return None
    if value not in Status.values:
        errors = FieldErrorList()
        errors.add(field, enum_message(Status.values, value), "invalid_enum_value")
        raise ValidationFailed(errors)
    return value


def list_executions(
    project: Project,
    workflow_id: Any,
    *,
    page: int = 1,
    page_size: int = 20,
    status: str | None = None,
) -> ExecutionPage:
    """A page of the workflow's executions, newest first (``page_size`` at most 100)."""
    status = check_status(status)
    workflow = get_workflow_row(project, workflow_id)
    page, page_size = max(page, 1), min(max(page_size, 1), MAX_PAGE_SIZE)
    rows = executions(project).filter(workflow=workflow)
    if status is not None:
        rows = rows.filter(status=status)
    start = (page - 1) * page_size
    listed = list(rows.order_by("-started_at", "-id")[start : start + page_size])
    return ExecutionPage(listed, rows.count(), page, page_size)


def get_execution(
    project: Project, workflow_id: Any, execution_id: Any, *, using: str | None = None
) -> WorkflowExecution:
    """One execution of the workflow, with ``step_executions`` (oldest first, each with its
    step) prefetched as ``steps_run``."""
    workflow = get_workflow_row(project, workflow_id, using=using)
    rows = executions(project, using=using).filter(workflow=workflow)
    execution = project_object_or_404(rows, project, execution_id, "WorkflowExecution")
    execution.steps_run = list(
        StepExecution.objects.using(using)
        .filter(project=project, execution=execution)
        .select_related("step")
        .order_by("created_at", "id")
    )
    return execution


# ---------------------------------------------------------------------------------------------
# Cancelling


def _close_open_steps(project_id: Any, runs, now, alias: str) -> None:
    StepExecution.objects.using(alias).filter(
        project_id=project_id, execution__in=runs, status__in=OPEN_STEP_STATUSES
    ).update(status=StepExecution.Status.SKIPPED, completed_at=now)


def cancel_execution(project: Project, workflow_id: Any, execution_id: Any) -> WorkflowExecution:
    """Cancel a RUNNING or WAITING execution ("Cancelled by user"). Cancelling a cancelled one
    again answers it as it is; one that is over otherwise is a 409."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        execution = get_execution(project, workflow_id, execution_id, using=alias)
        now = timezone.now()
        runs = WorkflowExecution.objects.using(alias).filter(
            project=project, pk=execution.pk, status__in=ACTIVE_STATUSES
        )
        cancelled = runs.update(
            status=Status.CANCELLED, exit_reason=CANCELLED_BY_USER, completed_at=now, updated_at=now
        )
        if cancelled:
            _close_open_steps(project.pk, [execution.pk], now, alias)
        execution = get_execution(project, workflow_id, execution_id, using=alias)
    if not cancelled and execution.status != Status.CANCELLED:
        raise ExecutionFinished(
            f"Execution is {execution.status}: only RUNNING and WAITING executions can be "
            "cancelled",
            details={"status": execution.status},
        )
    return execution


def cancel_all(project: Project, workflow_id: Any) -> int:
    """Cancel every RUNNING and WAITING execution of the workflow; returns how many."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        workflow = get_workflow_row(project, workflow_id, using=alias)
        now = timezone.now()
        cancelled = (
            WorkflowExecution.objects.using(alias)
            .filter(project=project, workflow=workflow, status__in=ACTIVE_STATUSES)
            .update(
                status=Status.CANCELLED,
                exit_reason=CANCELLED_IN_BULK,
                completed_at=now,
                updated_at=now,
            )
        )
        if cancelled:
            runs = WorkflowExecution.objects.using(alias).filter(
                project=project, workflow=workflow, status=Status.CANCELLED, completed_at=now
            )
            _close_open_steps(project.pk, runs, now, alias)
    return cancelled
