"""Tables of the workflow graph's edges and of its runs (re-exported by :mod:`.models`).

A workflow is a graph: its :class:`~plunk_events.models.WorkflowStep` rows are the nodes and
:class:`WorkflowTransition` rows the edges. A :class:`WorkflowExecution` is one contact's run
through it and a :class:`WorkflowStepExecution` one step of that run.

Exactly once is a matter of unique constraints, not of checks before an insert:

- ``plunk_execution_source_event``: one execution per (workflow, source event), so an event
  dispatched twice (a retried task, two dispatchers) starts one run.
- ``plunk_execution_one_active``: one RUNNING or WAITING execution per (workflow, contact).
- ``plunk_execution_enrolled_once``: ``enrollment_key`` is the contact's id when the workflow
  did not allow re-entry at enrolment (NULL otherwise), so a contact enters such a workflow once
  however many triggers race.
- ``plunk_stepexec_once``: a step runs at most once per execution.

As in :mod:`.models`, every index and unique constraint starts with ``project``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .constants import EVENT_NAME_MAX_LENGTH
from .ids import uuid7

#: Execution statuses of a run that is not over (the runtime still owes it work).
ACTIVE_STATUSES = ("RUNNING", "WAITING")
#: Step execution statuses of a step that has not run to its end yet.
OPEN_STEP_STATUSES = ("PENDING", "SCHEDULED", "WAITING")


class WorkflowTransition(models.Model):
    """An edge ``from_step → to_step``.

    Leaving a CONDITION step, ``condition`` is ``{"branch": <branch>}`` (``yes``/``no``, or a
    multi-branch id or ``default``); leaving a WAIT_FOR_EVENT step, ``wait_outcome`` says
    whether the edge is taken when the event arrives or when the wait times out. Any other step
    has at most one outgoing edge, with neither. Lower ``priority`` is tried first.
    """

    class WaitOutcome(models.TextChoices):
        EVENT = "EVENT"
        TIMEOUT = "TIMEOUT"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey("plunk_events.Project", on_delete=models.CASCADE, db_index=False)
    workflow = models.ForeignKey(
        "plunk_events.Workflow",
        on_delete=models.CASCADE,
        related_name="transitions",
        db_index=False,
    )
    from_step = models.ForeignKey(
        "plunk_events.WorkflowStep",
        on_delete=models.CASCADE,
        related_name="outgoing_transitions",
        db_index=False,
    )
    to_step = models.ForeignKey(
        "plunk_events.WorkflowStep",
        on_delete=models.CASCADE,
        related_name="incoming_transitions",
        db_index=False,
    )
    condition = models.JSONField(null=True, blank=True)
    wait_outcome = models.CharField(  # noqa: DJ001 (null: not a WAIT_FOR_EVENT edge)
        max_length=10, choices=WaitOutcome.choices, null=True, blank=True
    )
    priority = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "from_step", "wait_outcome"],
                condition=Q(wait_outcome__isnull=False),
                name="plunk_transition_one_outcome",
            )
        ]
        indexes = [
            # a workflow's graph (GET /workflows/<id>, editing guards)
            models.Index(fields=["project", "workflow"], name="plunk_transition_p_workflow"),
            # where a run goes next
            models.Index(
                fields=["project", "from_step", "priority"], name="plunk_transition_p_from"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_step_id} → {self.to_step_id}"


class WorkflowExecution(models.Model):
    """One contact's run through a workflow."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING"
        WAITING = "WAITING"
        COMPLETED = "COMPLETED"
        EXITED = "EXITED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey("plunk_events.Project", on_delete=models.CASCADE, db_index=False)
    workflow = models.ForeignKey(
        "plunk_events.Workflow",
        on_delete=models.CASCADE,
        related_name="executions",
        db_index=False,
    )
    contact = models.ForeignKey(
        "plunk_events.Contact",
        on_delete=models.CASCADE,
        related_name="workflow_executions",
        db_index=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    current_step = models.ForeignKey(
        "plunk_events.WorkflowStep",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    exit_reason = models.TextField(null=True, blank=True)  # noqa: DJ001 (Plunk: nullable)
    #: The trigger event's data as stored (or the manual start's ``context``); WAIT_FOR_EVENT
    #: merges the awaited event's data in.
    context = models.JSONField(null=True, blank=True)
    #: The event that started the run; no foreign key, as events can be deleted by name.
    source_event_id = models.UUIDField(null=True, blank=True)
    #: The contact's id when the workflow did not allow re-entry at enrolment, else NULL.
    enrollment_key = models.UUIDField(null=True, blank=True, editable=False)
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    #: Moved by every state change, so a compare-and-swap on it detects a concurrent one.
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "workflow", "source_event_id"],
                condition=Q(source_event_id__isnull=False),
                name="plunk_execution_source_event",
            ),
            models.UniqueConstraint(
                fields=["project", "workflow", "contact"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="plunk_execution_one_active",
            ),
            models.UniqueConstraint(
                fields=["project", "workflow", "enrollment_key"],
                condition=Q(enrollment_key__isnull=False),
                name="plunk_execution_enrolled_once",
            ),
        ]
        indexes = [
            # GET /workflows/<id>/executions, newest first
            models.Index(
                fields=["project", "workflow", "-started_at", "-id"],
                name="plunk_execution_p_started",
            ),
            # ?status=, active counts of the editing guards, cancel-all
            models.Index(
                fields=["project", "workflow", "status", "-started_at", "-id"],
                name="plunk_execution_p_status",
            ),
            # re-entry ("ever enrolled"), a contact's runs
            models.Index(
                fields=["project", "contact", "workflow"], name="plunk_execution_p_contact"
            ),
            # RUNNING runs by last change: a run left RUNNING by a crash is found and resumed
            models.Index(
                fields=["project", "updated_at"],
                condition=Q(status="RUNNING"),
                name="plunk_execution_p_running",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} for {self.contact_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class WorkflowStepExecution(models.Model):
    """One step of a run: its state, what it produced, and when it is due."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        SCHEDULED = "SCHEDULED"
        WAITING = "WAITING"
        RUNNING = "RUNNING"
        COMPLETED = "COMPLETED"
        SKIPPED = "SKIPPED"
        FAILED = "FAILED"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey("plunk_events.Project", on_delete=models.CASCADE, db_index=False)
    execution = models.ForeignKey(
        WorkflowExecution,
        on_delete=models.CASCADE,
        related_name="step_executions",
        db_index=False,
    )
    step = models.ForeignKey(
        "plunk_events.WorkflowStep",
        on_delete=models.CASCADE,
        related_name="executions",
        db_index=False,
    )
    #: The execution's contact, copied so a contact's waits are found through one index.
    contact = models.ForeignKey(
        "plunk_events.Contact", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)  # noqa: DJ001 (Plunk: nullable)
    #: When the step is due: a DELAY's resume time, a WAIT_FOR_EVENT's timeout.
    execute_after = models.DateTimeField(null=True, blank=True)
    #: The event a WAITING WAIT_FOR_EVENT row waits for ("" otherwise).
    wait_event_name = models.CharField(max_length=EVENT_NAME_MAX_LENGTH, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "execution", "step"], name="plunk_stepexec_once"
            )
        ]
        indexes = [
            # due steps: filter(project=, status__in=OPEN_STEP_STATUSES, execute_after__lte=now)
            models.Index(
                fields=["project", "execute_after"],
                condition=Q(status__in=OPEN_STEP_STATUSES, execute_after__isnull=False),
                name="plunk_stepexec_p_due",
            ),
            # an arriving event's waits: filter(project=, contact=, status=WAITING,
            # wait_event_name=name)
            models.Index(
                fields=["project", "contact", "wait_event_name"],
                condition=Q(status="WAITING"),
                name="plunk_stepexec_p_waiting",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} of {self.execution_id} ({self.status})"
