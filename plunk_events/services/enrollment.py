"""Executions started by events, and waits resumed by them: the dispatcher's ``workflows``
consumer (:mod:`.dispatch`).

Every committed event whose name is an enabled EVENT workflow's trigger starts an execution
for its contact (tracked, batch and system events alike; events without a contact start
nothing), through :func:`.executions.enroll`, whose unique constraints make it once per
(workflow, source event) and apply the re-entry rules. An event named like a WAIT_FOR_EVENT
step resumes that contact's waits for it that began before it.

At least once. The dispatcher reads the project's events with those names after the
``workflows`` cursor, and moves the cursor only past events older than
``DISPATCH_SETTLE_SECONDS``: a transaction that stamped its event earlier but committed later
than a newer event is still read. Newer events are read again by the next passes; a process
skips those it handled already (:data:`_handled`), and handling one twice is harmless anyway:
a second start of the same (workflow, event) finds the execution there, and a wait resumed once
is not waiting any more. Nothing is written per event on the ingest path.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..conf import conf
from ..models import Event, Workflow, WorkflowStep
from ..workflow_models import WorkflowExecution
from . import dispatch, workflow_runtime
from .executions import trigger_step_id

logger = logging.getLogger(__name__)

#: Events read per query.
EVENTS_PER_READ = 1_000
#: Per process and project: the unsettled events this process handled already (id → time), so
#: reading them again until they settle costs nothing. A process that has not seen them (a
#: restart, another worker) handles them again, which the constraints make harmless.
_handled: dict[str, dict[Any, Any]] = {}


def triggers(alias: str, project_id: Any) -> dict[str, list[Workflow]]:
    """Enabled EVENT workflows of the project by trigger event name."""
    by_name: dict[str, list[Workflow]] = {}
    workflows = Workflow.objects.using(alias).filter(
        project_id=project_id, enabled=True, trigger_type=Workflow.TriggerType.EVENT
    )
    for workflow in workflows:
        name = workflow.trigger_event_name
        if name:
            by_name.setdefault(name, []).append(workflow)
    return by_name


def wait_names(alias: str, project_id: Any) -> set[str]:
    """Event names WAIT_FOR_EVENT steps of the project wait for (disabled workflows' runs go
    on, so every workflow's steps count)."""
    names = (
        WorkflowStep.objects.using(alias)
        .filter(project_id=project_id, type=WorkflowStep.Type.WAIT_FOR_EVENT)
        .values_list("config__eventName", flat=True)
    )
    return {n for n in names if isinstance(n, str) and n}


def _events(alias: str, position, names: set[str]) -> list[tuple]:
    after = dispatch.after_cursor(position)
    return list(
        Event.objects.using(alias)
        .filter(after, project_id=position.project_id, name__in=sorted(names))
        .exclude(contact_id=None)
        .order_by("created_at", "id")
        .values_list("created_at", "id", "contact_id", "name", "data")[:EVENTS_PER_READ]
    )


def _start(alias: str, workflow: Workflow, event: tuple, trigger: Any) -> bool:
    """Start ``workflow`` for the event's contact, unless the event started it already or the
    re-entry rules keep the contact out (:func:`.executions.enroll`), and run it here until it
    waits or ends: the dispatcher is a task already, and a task per run would only queue."""
    from .executions import enroll

    created_at, event_id, contact_id, _name, data = event
    run = enroll(
        workflow,
        contact_id,
        context=data,
        source_event_id=event_id,
        trigger_id=trigger,
        using=alias,
        notify=False,
    )
    if run is None:
        return False
    workflow_runtime.advance(run, trigger)
    return True


def _settle(alias: str, position, settled_before) -> None:
    """Move the cursor past every event stamped before ``settled_before`` (none of them is
    unread), so a workflow enabled later does not start runs for old events: at most those of
    the last ``DISPATCH_SETTLE_SECONDS`` before it."""
    if position.created_at < settled_before:
        last = dispatch.NewEvent(settled_before, uuid.UUID(int=(1 << 128) - 1), None, "")
        dispatch.advance(alias, position, last)


def enroll_new_events(alias: str, project_id: Any) -> dict[str, int]:
    """The ``workflows`` consumer: start executions and resume waits for the new events."""
    totals = {"events": 0, "started": 0, "resumed": 0}
    by_name = triggers(alias, project_id)
    waited = wait_names(alias, project_id)
    names = set(by_name) | waited
    now = timezone.now()
    settled_before = now - timedelta(seconds=conf.DISPATCH_SETTLE_SECONDS)
    if not names:
        return totals
    position = dispatch.cursor(alias, project_id, "workflows", settled_before)
    trigger_ids: dict[Any, Any] = {}
    handled = _handled.setdefault(str(project_id), {})
    while True:
        batch = _events(alias, position, names)
        if not batch:
            _settle(alias, position, settled_before)
            return totals
        totals["events"] += len(batch)
        fresh = [e for e in batch if e[1] not in handled]
        started = set(
            WorkflowExecution.objects.using(alias)
            .filter(project_id=project_id, source_event_id__in=[e[1] for e in fresh])
            .values_list("workflow_id", "source_event_id")
        )
        for event in fresh:
            created_at, event_id, contact_id, name, data = event
            for workflow in by_name.get(name, ()):
                if (workflow.pk, event_id) not in started:
                    if workflow.pk not in trigger_ids:
                        trigger_ids[workflow.pk] = trigger_step_id(workflow, using=alias)
                    totals["started"] += _start(alias, workflow, event, trigger_ids[workflow.pk])
            if name in waited:
                totals["resumed"] += workflow_runtime.resume_waits_for(
                    alias, project_id, contact_id, name, event_id, created_at, data
                )
            handled[event_id] = created_at
        settled = [e for e in batch if e[0] <= settled_before]
        for old_id in [i for i, at in handled.items() if at <= settled_before]:
            del handled[old_id]  # behind the cursor from now on: never read again
        if len(batch) < EVENTS_PER_READ:  # caught up: every settled event is handled
            _settle(alias, position, settled_before)
            return totals
        if not settled:
            return totals
        last = dispatch.NewEvent(settled[-1][0], settled[-1][1], settled[-1][2], settled[-1][3])
        if not dispatch.advance(alias, position, last) or len(batch) < EVENTS_PER_READ:
            return totals
