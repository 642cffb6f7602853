"""Which segments and workflows reference an event name, and the lock that keeps
the delete guard race-free.

Both the delete guard and every write that can add a reference (segment or workflow saves) take
the project's row lock first, inside their transaction, so a reference cannot appear between
the guard's check and the start of the deletion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import router
from django.utils import timezone

from ..constants import is_system_event
from ..models import EventDeletion, Project, Segment, Workflow, WorkflowStep
from .errors import Conflict

EVENT_FIELD_PREFIX = "event."


def iter_condition_filters(condition: Any) -> Iterator[dict]:
    """Every filter dict in a condition tree, walking nested ``groups[].conditions``."""
    if not isinstance(condition, dict):
        return
    for group in condition.get("groups") or []:
        if not isinstance(group, dict):
            continue
        for flt in group.get("filters") or []:
            if isinstance(flt, dict):
                yield flt
        yield from iter_condition_filters(group.get("conditions"))


def condition_event_names(condition: Any) -> set[str]:
    """Event names a condition references through ``event.<name>`` fields."""
    names = set()
    for flt in iter_condition_filters(condition):
        fld = flt.get("field")
        if isinstance(fld, str) and fld.startswith(EVENT_FIELD_PREFIX):
            names.add(fld[len(EVENT_FIELD_PREFIX) :])
    return names


@dataclass
class References:
    segments: list[Segment] = field(default_factory=list)
    workflows: list[Workflow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.segments or self.workflows)

    def as_usage(self) -> dict[str, list[dict[str, str]]]:
        return {
            "usedInSegments": [{"id": str(s.id), "name": s.name} for s in self.segments],
            "usedInWorkflows": [{"id": str(w.id), "name": w.name} for w in self.workflows],
        }


def find_references(project: Project, name: str, *, using: str | None = None) -> References:
    """Segments and workflows that reference ``name``; see :func:`references_by_name`.

    The delete guard passes ``using`` (the primary) so a replica's lag cannot hide a reference.
    """
    return references_by_name(project, [name], using=using)[name]


def references_by_name(
    project: Project, names: Iterable[str], *, using: str | None = None
) -> dict[str, References]:
    """For each name: segments whose condition (walked recursively) has an ``event.<name>``
    filter, sorted by name; workflows triggered by the name (enabled or not) or waiting for it
    in a WAIT_FOR_EVENT step, by creation, each once. Three queries whatever the number of names.
    """
    wanted = set(names)
    out = {name: References() for name in wanted}
    if not wanted:
        return out
    segments = Segment.objects.using(using).filter(project=project).only("id", "name", "condition")
    for segment in sorted(segments, key=lambda s: s.name):
        for name in condition_event_names(segment.condition) & wanted:
            out[name].segments.append(segment)
    waiting: dict[Any, set[str]] = {}
    steps = WorkflowStep.objects.using(using).filter(
        project=project, type=WorkflowStep.Type.WAIT_FOR_EVENT
    )
    for workflow_id, config in steps.values_list("workflow_id", "config"):
        if isinstance(config, dict) and config.get("eventName") in wanted:
            waiting.setdefault(workflow_id, set()).add(config["eventName"])
    workflows = (
        Workflow.objects.using(using)
        .filter(project=project)
        .only("id", "name", "trigger_type", "trigger_config", "created_at")
        .order_by("created_at")
    )
    for workflow in workflows:
        used = waiting.get(workflow.id, set()) | ({workflow.trigger_event_name} & wanted)
        for name in used:
            out[name].workflows.append(workflow)
    return out


def workflow_event_names(workflow_trigger: dict | None, steps: Iterable[dict]) -> set[str]:
    """Event names a workflow would reference: its trigger and its WAIT_FOR_EVENT steps."""
    names = set()
    if isinstance(workflow_trigger, dict) and isinstance(workflow_trigger.get("eventName"), str):
        names.add(workflow_trigger["eventName"])
    for step in steps:
        config = step.get("config")
        if step.get("type") == WorkflowStep.Type.WAIT_FOR_EVENT and isinstance(config, dict):
            event_name = config.get("eventName")
            if isinstance(event_name, str):
                names.add(event_name)
    return names


def deletion_allowed(name: str, references: References, job: EventDeletion | None = None) -> bool:
    """The delete guard's verdict for a name: not a system event, referenced by no segment or
    workflow, and no live worker deleting it already (an abandoned job is taken over)."""
    alive = job is not None and job.worker_alive()
    return not is_system_event(name) and not references and not alive


def lock_project(project: Project) -> Project:
    """Take the project's row lock (on the primary); call inside ``transaction.atomic()``."""
    return (
        Project.objects.using(router.db_for_write(Project)).select_for_update().get(pk=project.pk)
    )


def deletion_json(job: EventDeletion, now: datetime | None = None) -> dict[str, Any]:
    """A RUNNING delete job as the API shows it (``usage.deletion``, 409 details).

    ``status`` is ``RUNNING`` while a worker holds the job's lease and ``ABANDONED`` once the
    lease ran out (its worker was killed); ``deleted`` counts the events deleted so far.
    """
    return {
        "status": "RUNNING" if job.worker_alive(now) else "ABANDONED",
        "deleted": job.deleted_count,
        "startedAt": job.created_at,
    }


class DeletionRunning(Conflict):
    """409: the names have a RUNNING delete job; ``jobs`` are those jobs, sorted by name.

    Segment and workflow writes (:mod:`.automation`) finish jobs whose worker is gone and try
    again; a job with a live worker is refused as is.
    """

    def __init__(self, message: str, jobs: list[EventDeletion]) -> None:
        now = timezone.now()
        super().__init__(
            message,
            details={
                "eventNames": [job.name for job in jobs],
                "deletions": [{"eventName": job.name, **deletion_json(job, now)} for job in jobs],
            },
        )
        self.jobs = jobs

    @property
    def abandoned(self) -> bool:
        """Every job's worker is gone, so finishing them would let the write through."""
        now = timezone.now()
        return not any(job.worker_alive(now) for job in self.jobs)


def guard_new_references(project: Project, names: Iterable[str]) -> None:
    """Refuse to reference an event name whose deletion is running (:class:`DeletionRunning`).

    Call inside the transaction that saves the segment or workflow; it takes the project lock
    that the delete guard also takes.
    """
    names = set(names)
    lock_project(project)
    if not names:
        return
    busy = list(
        EventDeletion.objects.using(router.db_for_write(EventDeletion))
        .filter(project=project, name__in=names, status=EventDeletion.Status.RUNNING)
        .order_by("name")
    )
    if busy:
        raise DeletionRunning(
            f'Event "{busy[0].name}" is being deleted and cannot be referenced', busy
        )
