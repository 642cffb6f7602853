"""Work that follows new events, found by reading them back instead of queueing one per event.

The ingest path adds no write per event for the engine. A write that recorded events calls
:func:`events_recorded`, which, once the transaction commits, :func:`nudge`\\ s the project: at
most one ``tasks.dispatch_events`` per project per ``DISPATCH_DELAY_SECONDS`` and process,
deferred by that delay where the task backend can defer (it has a worker). A nudge skipped
because one is pending is safe: the pending task starts after this commit, so it sees these
events. With the immediate backend every nudge runs the dispatch inline.

The task reads the project's events in ``(created_at, id)`` order after each consumer's
:class:`~plunk_events.models.EventCursor` and moves the cursor on by compare-and-swap:

* ``segments``: the contacts of the new events are re-evaluated against the tracked segments
  (:func:`.segments.reevaluate`), in one pass for everything that arrived since the last one.
  Entry and exit events are new events too, so conditions that read segments see them on the
  next pass (and a pass that changes nothing records nothing: it converges).

An event that commits after a later one was dispatched (two writes racing) is behind the cursor:
the periodic recompute (``SEGMENT_RECOMPUTE_SECONDS``) catches its contact. The periodic job
:func:`dispatch_all` sweeps every project, for nudges lost with a crashed process.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.utils import timezone

from ..conf import conf
from ..models import Event, EventCursor, Project
from .db import db_for_write

logger = logging.getLogger(__name__)

#: Events read per query; a pass reads on until it has caught up.
EVENTS_PER_READ = 5_000
#: Contacts re-evaluated per statement.
CONTACTS_PER_REEVALUATION = 500

#: Per process: project id → monotonic time until which a dispatch is pending.
_pending: dict[str, float] = {}
#: Per thread, while a dispatch runs inline (a backend without a worker): the projects nudged
#: meanwhile, e.g. by the entry events the dispatch records, dispatched again after it.
_inline = threading.local()
#: Passes an inline dispatch makes at most (conditions reading segments settle in two).
MAX_INLINE_PASSES = 3


# ---------------------------------------------------------------------------------------------
# Nudging


def events_recorded(project: Any, *, using: str | None = None) -> None:
    """A write in progress recorded events of ``project``: nudge the dispatcher after the commit,
    if anything consumes them (the project has tracked segments)."""
    if not wants_dispatch(project, using):
        return
    project_id = str(getattr(project, "pk", project))
    transaction.on_commit(lambda: nudge(project_id), using=using or db_for_write(), robust=True)


def consumers_exist(project_id: Any, using: str | None = None):
    """Whether anything reads the project's new events: tracked segments, enabled EVENT
    workflows or waiting WAIT_FOR_EVENT steps (a queryset-free boolean expression over
    ``project_id``, an OuterRef when annotated on a Project query)."""
    from ..models import Segment, Workflow
    from ..workflow_models import WorkflowStepExecution

    return (
        Q(
            Exists(
                Segment.objects.using(using).filter(
                    project=project_id, type=Segment.Type.DYNAMIC, track_membership=True
                )
            )
        )
        | Q(Exists(Workflow.objects.using(using).filter(project=project_id, enabled=True)))
        | Q(
            Exists(
                WorkflowStepExecution.objects.using(using).filter(
                    project=project_id, status=WorkflowStepExecution.Status.WAITING
                )
            )
        )
    )


#: Attribute of a Project carrying whether its events have consumers (set by the track key
#: lookup, which annotates ``**{CONSUMERS_ATTR: CONSUMERS_FLAG}``).
CONSUMERS_ATTR = "has_event_consumers"
CONSUMERS_FLAG = ExpressionWrapper(consumers_exist(OuterRef("pk")), output_field=BooleanField())

#: Seconds a process remembers whether a project's events have consumers.
CONSUMERS_CACHE_SECONDS = 1.0
_consumers_cache: dict[str, tuple[float, bool]] = {}


def wants_dispatch(project: Any, using: str | None = None) -> bool:
    """Whether a consumer reads this project's events. The track routes carry the answer on the
    project from the key lookup (no extra statement); other callers ask, cached a second per
    process and forgotten when this process writes a segment or workflow (:func:`forget`)."""
    flag = getattr(project, CONSUMERS_ATTR, None)
    if flag is not None:
        return bool(flag)
    key = str(getattr(project, "pk", project))
    cached = _consumers_cache.get(key)
    clock = time.monotonic()
    if cached is not None and cached[0] > clock:
        return cached[1]
    answer = Project.objects.using(using).filter(consumers_exist(key), pk=key).exists()
    _consumers_cache[key] = (clock + CONSUMERS_CACHE_SECONDS, answer)
    return answer


def forget(project_id: Any) -> None:
    """A segment or workflow write: this process forgets whether the project has consumers
    (other processes within ``API_KEY_CACHE_SECONDS``; the periodic sweep covers the gap)."""
    from .projects import key_cache

    _consumers_cache.pop(str(project_id), None)
    key_cache.clear()  # the projects it holds carry the old CONSUMERS_ATTR


def nudge(project_id: str) -> None:
    """Enqueue a dispatch of the project unless this process has one pending (see module)."""
    from .. import tasks

    task = tasks.dispatch_events
    if not task.get_backend().supports_defer:
        if getattr(_inline, "project_ids", None) is not None:
            _inline.project_ids.add(project_id)  # a dispatch runs in this thread: it goes on
            return
        task.enqueue(project_id)
        return
    clock = time.monotonic()
    if _pending.get(project_id, 0.0) > clock:
        return
    now = timezone.now()
    run_after = now + timedelta(seconds=conf.DISPATCH_DELAY_SECONDS)
    if _whole_seconds(task.get_backend()):
        run_after = datetime.fromtimestamp(math.ceil(run_after.timestamp()), tz=UTC)
    # Skipping later nudges is safe only while the pending task cannot have started yet.
    _pending[project_id] = clock + (run_after - now).total_seconds()
    task.using(run_after=run_after).enqueue(project_id)


def _whole_seconds(backend) -> bool:
    """Whether the backend schedules deferred tasks by whole seconds: RQ's scheduled-job
    registry truncates ``run_after`` to the second, so such a task may start up to a second
    before it; it is given a whole second to start at."""
    return type(backend).__module__.startswith("django_tasks_rq")


# ---------------------------------------------------------------------------------------------
# Cursors


@dataclass(frozen=True)
class NewEvent:
    created_at: datetime
    id: uuid.UUID
    contact_id: uuid.UUID | None
    name: str


def cursor(alias: str, project_id: Any, consumer: str, start: datetime) -> EventCursor:
    """The consumer's cursor; a new one starts at ``start`` (the consumer says how much history
    its first dispatch reads)."""
    rows = EventCursor.objects.using(alias)
    found = rows.filter(project_id=project_id, consumer=consumer).first()
    if found is not None:
        return found
    try:
        with transaction.atomic(using=alias):
            return rows.create(
                project_id=project_id,
                consumer=consumer,
                created_at=start,
                event_id=uuid.UUID(int=0),
            )
    except IntegrityError:  # created meanwhile by a concurrent dispatch
        return rows.get(project_id=project_id, consumer=consumer)


def after_cursor(position: EventCursor) -> Q:
    """Events after the cursor in ``(created_at, id)`` order."""
    return Q(created_at__gte=position.created_at) & ~Q(
        created_at=position.created_at, id__lte=position.event_id
    )


def events_after(alias: str, position: EventCursor, limit: int) -> list[NewEvent]:
    """The next ``limit`` events of the cursor's project after it, oldest first."""
    rows = (
        Event.objects.using(alias)
        .filter(after_cursor(position), project_id=position.project_id)
        .order_by("created_at", "id")
        .values_list("created_at", "id", "contact_id", "name")[:limit]
    )
    return [NewEvent(*row) for row in rows]


def advance(alias: str, position: EventCursor, last: NewEvent) -> bool:
    """Move the cursor to ``last`` unless a concurrent dispatch moved it first."""
    moved = (
        EventCursor.objects.using(alias)
        .filter(pk=position.pk, created_at=position.created_at, event_id=position.event_id)
        .update(created_at=last.created_at, event_id=last.id, updated_at=timezone.now())
    )
    if moved:
        position.created_at, position.event_id = last.created_at, last.id
    return bool(moved)


def consume(
    alias: str,
    project_id: Any,
    consumer: str,
    handle: Callable[[list[NewEvent]], Any],
    *,
    start: datetime,
) -> int:
    """Hand the events after the consumer's cursor (``start`` if it has none) to ``handle`` a
    read at a time, moving the cursor on after each; returns how many were handled. Stops when
    caught up, or when a concurrent dispatch moved the cursor (it handles the rest)."""
    position = cursor(alias, project_id, consumer, start)
    handled = 0
    while True:
        batch = events_after(alias, position, EVENTS_PER_READ)
        if not batch:
            return handled
        handle(batch)
        handled += len(batch)
        if not advance(alias, position, batch[-1]) or len(batch) < EVENTS_PER_READ:
            return handled


# ---------------------------------------------------------------------------------------------
# Consumers and the task body


def reevaluate_new_events(alias: str, project_id: Any) -> dict[str, int]:
    """The ``segments`` consumer: re-evaluate the contacts of the new events."""
    from . import segments
    from .reevaluation import tracked_segments

    totals = {"events": 0, "contacts": 0, "entered": 0, "exited": 0}
    conditions = list(tracked_segments(project_id, alias).values_list("condition", flat=True))
    if not conditions:
        return totals
    # Entry/exit events matter only to conditions that read segments.
    reads_segments = any(segments.references_segments(c) for c in conditions)

    def handle(batch: list[NewEvent]) -> None:
        contacts = list(
            dict.fromkeys(
                e.contact_id
                for e in batch
                if e.contact_id is not None
                and (reads_segments or not e.name.startswith("segment."))
            )
        )
        for start in range(0, len(contacts), CONTACTS_PER_REEVALUATION):
            result = segments.reevaluate(
                project_id, contacts[start : start + CONTACTS_PER_REEVALUATION]
            )
            totals["entered"] += result.entered
            totals["exited"] += result.exited
        totals["contacts"] += len(contacts)

    # A first dispatch reads back one recompute interval: anything older was seen by the
    # periodic recompute, or by the full compute of a segment created since.
    start = timezone.now() - timedelta(seconds=conf.SEGMENT_RECOMPUTE_SECONDS)
    totals["events"] = consume(alias, project_id, "segments", handle, start=start)
    return totals


def _consume_all(alias: str, project_id: Any) -> dict[str, Any]:
    from .enrollment import enroll_new_events

    return {
        "segments": reevaluate_new_events(alias, project_id),
        "workflows": enroll_new_events(alias, project_id),
    }


def dispatch(project_id: Any) -> dict[str, Any]:
    """Body of ``tasks.dispatch_events``: run every consumer over the project's new events.

    Nudges sent while it runs in this thread (inline backend) make it go on with another pass.
    """
    alias = db_for_write()
    if getattr(_inline, "project_ids", None) is not None:  # nested: the outer one goes on
        _inline.project_ids.add(str(project_id))
        return {}
    _inline.project_ids = set()
    try:
        result = _consume_all(alias, project_id)
        for _ in range(MAX_INLINE_PASSES - 1):
            if str(project_id) not in _inline.project_ids:
                break
            _inline.project_ids.clear()
            _consume_all(alias, project_id)
        return result
    finally:
        _inline.project_ids = None


def dispatch_all() -> dict[str, int]:
    """The periodic sweep: dispatch every project whose events have consumers (lost nudges)."""
    alias = db_for_write()
    projects = [
        str(pk)
        for pk in Project.objects.using(alias)
        .filter(consumers_exist(OuterRef("pk"), alias))
        .values_list("pk", flat=True)
    ]
    for project_id in projects:
        try:
            dispatch(project_id)
        except Exception:
            logger.exception("Dispatch of project %s failed", project_id)
    return {"projects": len(projects)}
