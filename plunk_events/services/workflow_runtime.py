"""The workflow runtime: executions advanced step by step, through tasks, exactly once.

A run moves one step per transaction. :func:`advance` claims the execution at the step it is
told to run with a conditional UPDATE (the execution must be RUNNING or WAITING and its
``current_step`` that step): a duplicated, retried or stale task finds nothing to claim and
does nothing, and the claim holds the execution's row lock until the step and the move to the
next step commit. So a step runs once, and a run that a crash interrupts is left at a step that
the periodic job (:func:`resume_stalled`) runs again. Steps that wait end the chain:

* DELAY completes at once, puts the next step in the run as SCHEDULED with ``execute_after``
  and the execution WAITING;
* WAIT_FOR_EVENT leaves its step WAITING (``wait_event_name``, ``execute_after`` = timeout);
  the dispatcher (:mod:`.enrollment`) resumes it when the contact's event arrives.

Timers are not a task per run: :func:`schedule_timer` enqueues one ``resume_due_workflows``
task per project and second (per process) for when they fall due, and :func:`resume_due`
resumes every run due by then (10,000 DELAYs ending together are a handful of tasks); the
periodic job covers lost tasks and backends that cannot defer.

WEBHOOK calls the network outside any transaction: the step is marked RUNNING and committed
first, and completed by a second claim; a worker killed in between leaves it RUNNING, and the
periodic job delivers again with the same ``Idempotency-Key`` (the step execution's id).
Step semantics are in :mod:`.workflow_steps`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from ..conf import conf
from ..models import Contact, WorkflowStep
from ..workflow_models import (
    ACTIVE_STATUSES,
    WorkflowExecution,
    WorkflowStepExecution,
    WorkflowTransition,
)
from . import workflow_steps
from .db import db_for_write

logger = logging.getLogger(__name__)

Status = WorkflowExecution.Status
StepStatus = WorkflowStepExecution.Status
Outcome = WorkflowTransition.WaitOutcome


def stalled_after() -> timedelta:
    """A RUNNING execution untouched this long is taken to be stalled (its worker died): the
    periodic job runs its current step again (``WORKFLOW_STALLED_SECONDS``)."""
    return timedelta(seconds=conf.WORKFLOW_STALLED_SECONDS)


#: Steps one call runs at most before it hands the rest of the chain to a new task.
MAX_STEPS_PER_CALL = 100


def _enqueue(task_, *args: Any, alias: str) -> None:
    """Enqueue after the commit (inline on the immediate backend)."""
    from .. import tasks

    tasks.enqueue_on_commit(task_, *args, using=alias)


def execution_created(execution_id: Any, *, using: str | None = None) -> None:
    """A new execution committed: run it from its trigger step (inline on the immediate
    backend, on a worker otherwise)."""
    from .. import tasks

    alias = using or db_for_write()
    step_id = (
        WorkflowExecution.objects.using(alias)
        .filter(pk=execution_id)
        .values_list("current_step_id", flat=True)
        .first()
    )
    if step_id is not None:
        _enqueue(tasks.advance_workflow, str(execution_id), str(step_id), alias=alias)


def workflows_changed(project_id: Any) -> None:
    """A workflow of the project was written: whether its events have consumers may have
    changed (an enabled workflow)."""
    from .dispatch import forget

    forget(project_id)


# ---------------------------------------------------------------------------------------------
# Claims and moves


def _claim(alias: str, execution_id: Any, step_id: Any) -> WorkflowExecution | None:
    """Claim the execution at ``step_id`` (inside the caller's transaction): its row, locked
    until the transaction ends, or None if it is not there any more (finished, cancelled,
    moved on: the caller's task is stale). A concurrent claim waits for the lock and then finds
    the run moved on. SQLite has no row locks; its IMMEDIATE transactions serialise writers
    (check ``plunk_events.W001``)."""
    return (
        WorkflowExecution.objects.using(alias)
        .select_related("workflow", "current_step")
        .select_for_update(of=("self",))
        .filter(pk=execution_id, status__in=ACTIVE_STATUSES, current_step_id=step_id)
        .first()
    )


def _step_execution(alias: str, execution: WorkflowExecution) -> WorkflowStepExecution:
    row, _ = WorkflowStepExecution.objects.using(alias).get_or_create(
        project_id=execution.project_id,
        execution=execution,
        step=execution.current_step,
        defaults={"contact_id": execution.contact_id},
    )
    return row


def next_step(step: WorkflowStep, output: dict | None, outcome: str | None = None):
    """Where a run goes after ``step``: the first transition (by priority) whose branch is the
    CONDITION result, or whose ``waitOutcome`` is the wait's outcome (edges without one serve
    both, as before Plunk PR #466); any other step's one edge. None: the run is over."""
    transitions = list(
        WorkflowTransition.objects.using(step._state.db)
        .filter(project_id=step.project_id, from_step=step)
        .order_by("priority", "created_at")
    )
    if step.type == WorkflowStep.Type.CONDITION:
        branch = (output or {}).get("branch")
        chosen = [t for t in transitions if (t.condition or {}).get("branch") == branch]
    elif step.type == WorkflowStep.Type.WAIT_FOR_EVENT:
        chosen = [t for t in transitions if t.wait_outcome == outcome]
        if not chosen and all(t.wait_outcome is None for t in transitions):
            chosen = transitions
    else:
        chosen = transitions
    return chosen[0].to_step_id if chosen else None


def _finish(alias: str, execution: WorkflowExecution, status: str, **fields: Any) -> None:
    now = timezone.now()
    WorkflowExecution.objects.using(alias).filter(pk=execution.pk).update(
        status=status, current_step=None, completed_at=now, updated_at=now, **fields
    )


def _move_on(alias: str, execution: WorkflowExecution, to_step_id: Any) -> None:
    """Point the run at its next step (RUNNING), or complete it when there is none."""
    if to_step_id is None:
        _finish(alias, execution, Status.COMPLETED)
        return
    WorkflowExecution.objects.using(alias).filter(pk=execution.pk).update(
        status=Status.RUNNING, current_step_id=to_step_id, updated_at=timezone.now()
    )


def _complete_step(alias: str, row: WorkflowStepExecution, output: dict) -> None:
    now = timezone.now()
    WorkflowStepExecution.objects.using(alias).filter(pk=row.pk).update(
        status=StepStatus.COMPLETED,
        output=output,
        completed_at=now,
        started_at=row.started_at or now,
        execute_after=None,
        wait_event_name="",
    )


def _fail(alias: str, execution: WorkflowExecution, row: WorkflowStepExecution, error: str):
    now = timezone.now()
    WorkflowStepExecution.objects.using(alias).filter(pk=row.pk).update(
        status=StepStatus.FAILED, error=error, completed_at=now, started_at=row.started_at or now
    )
    _finish(alias, execution, Status.FAILED)


# ---------------------------------------------------------------------------------------------
# Advancing


@dataclass
class _Next:
    step_id: Any = None
    #: The step must call the network first (WEBHOOK): the claim committed it RUNNING.
    deliver: WorkflowStepExecution | None = None
    #: The run's status when the chain stops here (None: ask the database).
    status: str | None = None
    #: A WAIT_FOR_EVENT step began waiting: look for its event recorded meanwhile.
    waiting: WorkflowStepExecution | None = None


def advance(execution_id: Any, step_id: Any) -> str | None:
    """Run the execution from ``step_id`` until it waits or ends; returns its status then, or
    None if there was nothing to do (a stale or duplicate task)."""
    alias = db_for_write()
    for _ in range(MAX_STEPS_PER_CALL):
        with transaction.atomic(using=alias):
            execution = _claim(alias, execution_id, step_id)
            if execution is None:
                return None
            following = _run_current_step(alias, execution)
        if following.deliver is not None:
            following = _deliver_webhook(alias, execution, following.deliver)
        if following.waiting is not None and _catch_up_wait(alias, following.waiting):
            return _status(alias, execution_id)
        if following.step_id is None:
            return following.status or _status(alias, execution_id)
        step_id = following.step_id
    from .. import tasks

    _enqueue(tasks.advance_workflow, str(execution_id), str(step_id), alias=alias)
    return Status.RUNNING


def _status(alias: str, execution_id: Any) -> str | None:
    return (
        WorkflowExecution.objects.using(alias)
        .filter(pk=execution_id)
        .values_list("status", flat=True)
        .first()
    )


def _run_current_step(alias: str, execution: WorkflowExecution) -> _Next:
    """Run the claimed execution's current step (in the claim's transaction)."""
    step = execution.current_step
    row = _step_execution(alias, execution)
    now = timezone.now()
    if row.status == StepStatus.COMPLETED:  # done before a crash, not moved on: move on
        to = next_step(step, row.output, (row.output or {}).get("outcome"))
        _move_on(alias, execution, to)
        return _Next(to)
    if row.status == StepStatus.WAITING:  # only its event or its timeout moves it on
        return _Next(status=Status.WAITING)
    if row.status == StepStatus.SCHEDULED and row.execute_after and row.execute_after > now:
        return _Next(status=Status.WAITING)  # a DELAY's target, not due yet
    delivering = row.status == StepStatus.RUNNING and step.type == WorkflowStep.Type.WEBHOOK
    if delivering and row.started_at and now - row.started_at < stalled_after():
        return _Next()  # another worker is delivering it
    if step.type == WorkflowStep.Type.WEBHOOK:
        # The run is RUNNING while the request is out (a resumed DELAY target was WAITING), so
        # the stalled sweep finds it if this worker dies; other steps end in this transaction.
        WorkflowExecution.objects.using(alias).filter(pk=execution.pk).update(
            status=Status.RUNNING, updated_at=now
        )
        WorkflowStepExecution.objects.using(alias).filter(pk=row.pk).update(
            status=StepStatus.RUNNING, started_at=now, execute_after=None
        )
        return _Next(deliver=row)
    try:
        result = workflow_steps.run(alias, execution, step, row)
    except workflow_steps.StepFailed as exc:
        _fail(alias, execution, row, str(exc))
        return _Next(status=Status.FAILED)
    return _apply(alias, execution, step, row, result)


def _apply(alias, execution, step, row, result: workflow_steps.StepResult) -> _Next:
    """Record a step's result and move the run on (or park it)."""

    if result.wait_until is not None or result.waiting:
        # WAIT_FOR_EVENT: the step waits; the run waits with it.
        WorkflowStepExecution.objects.using(alias).filter(pk=row.pk).update(
            status=StepStatus.WAITING,
            output=result.output,
            started_at=row.started_at or timezone.now(),
            execute_after=result.wait_until,
            wait_event_name=result.wait_event_name,
        )
        WorkflowExecution.objects.using(alias).filter(pk=execution.pk).update(
            status=Status.WAITING, updated_at=timezone.now()
        )
        if result.wait_until is not None:
            schedule_timer(execution.project_id, result.wait_until, using=alias)
        row.wait_event_name = result.wait_event_name
        return _Next(status=Status.WAITING, waiting=row if result.wait_event_name else None)
    _complete_step(alias, row, result.output)
    if result.exit_reason is not None:
        _finish(alias, execution, Status.COMPLETED, exit_reason=result.exit_reason)
        return _Next(status=Status.COMPLETED)
    to = next_step(step, result.output)
    if result.resume_at is not None and to is not None:
        # DELAY: the next step is scheduled; the run waits until then.
        WorkflowStepExecution.objects.using(alias).update_or_create(
            project_id=execution.project_id,
            execution=execution,
            step_id=to,
            defaults={
                "contact_id": execution.contact_id,
                "status": StepStatus.SCHEDULED,
                "execute_after": result.resume_at,
            },
        )
        WorkflowExecution.objects.using(alias).filter(pk=execution.pk).update(
            status=Status.WAITING, current_step_id=to, updated_at=timezone.now()
        )
        schedule_timer(execution.project_id, result.resume_at, using=alias)
        return _Next(status=Status.WAITING)
    _move_on(alias, execution, to)
    return _Next(to, status=None if to else Status.COMPLETED)


def _deliver_webhook(alias: str, execution: WorkflowExecution, row) -> _Next:
    """Deliver outside any transaction, then complete the step under a new claim."""
    step = execution.current_step
    contact = Contact.objects.using(alias).get(pk=execution.contact_id)
    try:
        output = workflow_steps.deliver_webhook(execution, step, contact, row)
        failure = None
    except workflow_steps.StepFailed as exc:
        output, failure = None, str(exc)
    with transaction.atomic(using=alias):
        claimed = _claim(alias, execution.pk, step.pk)
        if claimed is None:  # cancelled meanwhile: the delivery happened, the run stays over
            return _Next()
        fresh = WorkflowStepExecution.objects.using(alias).get(pk=row.pk)
        if fresh.status != StepStatus.RUNNING:
            return _Next()  # a second delivery completed it first
        if failure is not None:
            _fail(alias, claimed, fresh, failure)
            return _Next()
        return _apply(alias, claimed, step, fresh, workflow_steps.StepResult(output))


# ---------------------------------------------------------------------------------------------
# Waits


def resume_wait(
    step_execution_id: Any,
    outcome: str,
    *,
    event_name: str | None = None,
    event_data: Any = None,
    received_at: datetime | None = None,
) -> bool:
    """End a WAITING WAIT_FOR_EVENT step with ``outcome`` (EVENT or TIMEOUT) and move its run
    on; False if it was not waiting any more (resumed by the other outcome, cancelled)."""
    from .. import tasks

    alias = db_for_write()
    now = timezone.now()
    with transaction.atomic(using=alias):
        row = (
            WorkflowStepExecution.objects.using(alias)
            .select_related("step")
            .filter(pk=step_execution_id, status=StepStatus.WAITING)
            .first()
        )
        if row is None:
            return False
        if outcome == Outcome.TIMEOUT and (row.execute_after is None or row.execute_after > now):
            return False  # not due (an early or stray timeout)
        execution = _claim(alias, row.execution_id, row.step_id)
        if execution is None:
            return False
        if outcome == Outcome.EVENT:
            output = {
                "eventName": event_name,
                "eventData": event_data,
                "receivedAt": (received_at or now).isoformat(),
                "outcome": Outcome.EVENT,
            }
            if isinstance(event_data, dict) and event_data:  # PR #466: the event's data joins
                context = execution.context if isinstance(execution.context, dict) else {}
                WorkflowExecution.objects.using(alias).filter(pk=execution.pk).update(
                    context={**context, **event_data}
                )
        else:
            output = {
                "timedOut": True,
                "eventName": row.step.config.get("eventName"),
                "outcome": Outcome.TIMEOUT,
            }
        done = (
            WorkflowStepExecution.objects.using(alias)
            .filter(pk=row.pk, status=StepStatus.WAITING)
            .update(
                status=StepStatus.COMPLETED,
                output=output,
                completed_at=now,
                execute_after=None,
                wait_event_name="",
            )
        )
        if not done:
            return False
        to = next_step(row.step, output, outcome)
        _move_on(alias, execution, to)
        if to is not None:
            _enqueue(tasks.advance_workflow, str(execution.pk), str(to), alias=alias)
    return True


def _catch_up_wait(alias: str, row: WorkflowStepExecution) -> bool:
    """Resume a wait that has just begun with its event if the contact recorded it after the
    run's previous step ended: the dispatcher may have read that event before the wait existed
    (an ``email.sent`` of the SEND_EMAIL step just before it, sent on that step's commit)."""
    from ..models import Event

    since = (
        WorkflowStepExecution.objects.using(alias)
        .filter(execution_id=row.execution_id, status=StepStatus.COMPLETED)
        .exclude(pk=row.pk)
        .aggregate(latest=models.Max("completed_at"))["latest"]
    )
    if since is None:
        return False
    event = (
        Event.objects.using(alias)
        .filter(
            project_id=row.project_id,
            contact_id=row.contact_id,
            name=row.wait_event_name,
            created_at__gte=since,
        )
        .order_by("created_at", "id")
        .values("name", "data", "created_at")
        .first()
    )
    if event is None:
        return False
    return resume_wait(
        row.pk,
        Outcome.EVENT,
        event_name=event["name"],
        event_data=event["data"],
        received_at=event["created_at"],
    )


def resume_waits_for(
    alias: str, project_id: Any, contact_id: Any, name: str, event_id, at, data
) -> int:
    """The contact's event ``name`` arrived: resume its waits for it that began before it."""
    waiting = WorkflowStepExecution.objects.using(alias).filter(
        project_id=project_id,
        contact_id=contact_id,
        status=StepStatus.WAITING,
        wait_event_name=name,
        started_at__lte=at,
    )
    resumed = 0
    for row_id in waiting.values_list("pk", flat=True):
        resumed += resume_wait(
            row_id, Outcome.EVENT, event_name=name, event_data=data, received_at=at
        )
    return resumed


# ---------------------------------------------------------------------------------------------
# The periodic job


#: Per process: ``(project id, due second)`` of the timer tasks it enqueued.
_timer_buckets: dict[tuple[str, int], None] = {}
#: Longest a resume_due task works before it hands the rest to a new task.
RESUME_BUDGET_SECONDS = 30.0


def schedule_timer(project_id: Any, due: datetime, *, using: str | None = None) -> None:
    """Make sure, once the transaction commits, that a ``resume_due_workflows`` task for the
    project runs at the second ``due`` falls in (or just after): a DELAY's next step or a
    wait's timeout. One task per project and second per process, however many runs fall due
    then; a task covers every run due when it starts. Without a backend that defers, the
    periodic job (``plunk_tick`` from cron) resumes them."""
    from .. import tasks

    alias = using or db_for_write()
    task = tasks.resume_due_workflows
    if not task.get_backend().supports_defer:
        return
    second = math.ceil(due.timestamp())
    key = (str(project_id), second)

    def enqueue() -> None:
        if key in _timer_buckets:
            return
        horizon = time.time() - 60
        for old in [k for k in _timer_buckets if k[1] < horizon]:
            del _timer_buckets[old]
        _timer_buckets[key] = None
        run_after = datetime.fromtimestamp(second, tz=UTC)
        task.using(run_after=run_after).enqueue(key[0])

    transaction.on_commit(enqueue, using=alias, robust=True)


def resume_due(
    project_id: Any = None, *, now: datetime | None = None, budget: float | None = None
) -> dict[str, Any]:
    """Resume the runs whose timer is due (of one project, or all): a DELAY's scheduled next
    step runs, a wait past its timeout takes its TIMEOUT edge. Works for at most ``budget``
    seconds, then hands the rest to a new task (``more``)."""
    from .. import tasks

    alias = db_for_write()
    now = now or timezone.now()
    deadline = time.monotonic() + (budget or RESUME_BUDGET_SECONDS)
    counts: dict[str, Any] = {"timers": 0, "timeouts": 0, "more": False}
    due = WorkflowStepExecution.objects.using(alias).filter(
        status__in=(StepStatus.SCHEDULED, StepStatus.WAITING), execute_after__lte=now
    )
    if project_id is not None:
        due = due.filter(project_id=project_id)
    rows = due.order_by("execute_after").values_list("pk", "status", "execution_id", "step_id")
    for row_id, status, execution_id, step_id in rows[:10_000]:
        if time.monotonic() > deadline:
            counts["more"] = True
            break
        if status == StepStatus.WAITING:
            counts["timeouts"] += resume_wait(row_id, Outcome.TIMEOUT)
        elif advance(execution_id, step_id) is not None:
            counts["timers"] += 1
        else:  # its run is over or elsewhere (cancelled): the timer is moot
            WorkflowStepExecution.objects.using(alias).filter(
                pk=row_id, status=StepStatus.SCHEDULED
            ).update(status=StepStatus.SKIPPED)
    if counts["more"] and project_id is not None:
        tasks.enqueue_on_commit(tasks.resume_due_workflows, str(project_id), using=alias)
    return counts


def resume_stalled(*, now: datetime | None = None) -> dict[str, int]:
    """Catch up on work whose task was lost: timers that are due (DELAY targets, wait
    timeouts) and RUNNING executions untouched for :func:`stalled_after` (a worker died)."""
    alias = db_for_write()
    now = now or timezone.now()
    resumed = resume_due(now=now, budget=float("inf"))
    counts = {"timers": resumed["timers"], "timeouts": resumed["timeouts"], "stalled": 0}
    stalled = WorkflowExecution.objects.using(alias).filter(
        status=Status.RUNNING, updated_at__lt=now - stalled_after()
    )
    for execution_id, step_id in stalled.values_list("pk", "current_step_id"):
        if step_id is not None and advance(execution_id, step_id) is not None:
            counts["stalled"] += 1
    return counts
