"""Background work of the app, on Django's Tasks API (imported through :mod:`.compat`).

Every task is a module-level function of this module, on the ``default`` backend and queue, and
takes JSON-serialisable arguments (ids as strings): a worker process gets them from the queue.
A backend may run a task more than once, so each one is idempotent. Enqueue with
:func:`enqueue_on_commit`, never from inside a write that may still roll back.

Periodic work. :data:`PERIODIC_JOBS` lists the jobs, each with the setting holding its interval.
:func:`run_due_jobs` runs the due ones; a job is claimed by a compare-and-swap update of its
:class:`~plunk_events.models.PeriodicSchedule` row, so it runs once per interval however many
ticks and ``plunk_tick`` runs overlap, on any number of hosts.

On a backend that can defer tasks (``supports_defer``: django-tasks-db, django-tasks-rq) the
:func:`tick` task is a chain: each tick enqueues the next one ``TICK_SECONDS`` ahead with
``run_after``, then runs the due jobs (a worker killed in a job does not break the chain). The
``tick`` row holds the chain's token. A tick first moves the token on by compare-and-swap and
only then enqueues its successor carrying the new token, so exactly one pending tick carries the
current token; a tick with any other token is stale and does nothing but :func:`ensure_ticking`.
That starts a chain when there is none or when its pending tick is long overdue (lost with its
queue or a crashed process), and concurrent calls start one chain at most. It runs after
``migrate``, from ``manage.py plunk_tick`` and from stale ticks. With the immediate backend (no
worker), ``plunk_tick`` from cron runs the due jobs instead.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .compat import task
from .conf import conf
from .models import PeriodicSchedule
from .services.db import db_for_write

logger = logging.getLogger(__name__)

#: Name of the chain's row in PeriodicSchedule; jobs use ``job:<name>``.
TICK = "tick"
#: A chain whose pending tick is this many ticks overdue (and at least LOST_AFTER_MIN) is lost.
LOST_AFTER_TICKS = 3
LOST_AFTER_MIN = timedelta(seconds=30)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    #: Key of ``PLUNK_EVENTS`` (conf.py) holding the seconds between two runs.
    interval_setting: str
    #: Dotted path of a callable taking no arguments and returning something JSON-serialisable.
    path: str

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=getattr(conf, self.interval_setting))


#: The periodic jobs; later work adds an entry (and its interval setting in conf.py).
PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("rollups", "ROLLUP_SECONDS", "plunk_events.services.housekeeping.fold_rollups"),
    PeriodicJob(
        "segments", "SEGMENT_RECOMPUTE_SECONDS", "plunk_events.services.segments.recompute_all"
    ),
    PeriodicJob(
        "dispatch", "DISPATCH_SWEEP_SECONDS", "plunk_events.services.dispatch.dispatch_all"
    ),
    PeriodicJob(
        "workflows",
        "WORKFLOW_SWEEP_SECONDS",
        "plunk_events.services.workflow_runtime.resume_stalled",
    ),
]


class PeriodicJobsFailed(Exception):
    """Some periodic jobs raised; ``results`` holds those that succeeded, ``errors`` the rest."""

    def __init__(self, results: dict[str, Any], errors: dict[str, BaseException]):
        self.results = results
        self.errors = errors
        super().__init__(
            "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in errors.items())
        )


def enqueue_on_commit(task_, *args: Any, using: str | None = None, **kwargs: Any) -> None:
    """Enqueue ``task_(*args, **kwargs)`` once the current transaction on ``using`` commits.

    ``using`` defaults to the app's write database. If the transaction rolls back nothing is
    enqueued; outside a transaction the task is enqueued at once. So a worker never runs a task
    before the rows it was enqueued for are visible, nor for rows that never existed. An
    enqueue that fails (the queue is unreachable) is logged as an error and does not raise
    into the caller, whose write has committed: the periodic jobs catch up on lost work.
    """
    alias = using or db_for_write()
    transaction.on_commit(lambda: task_.enqueue(*args, **kwargs), using=alias, robust=True)


def _tick_interval() -> timedelta:
    return timedelta(seconds=conf.TICK_SECONDS)


def _lost_after() -> timedelta:
    return max(LOST_AFTER_TICKS * _tick_interval(), LOST_AFTER_MIN)


def supports_chain() -> bool:
    """Whether the tick chain can run: the tasks' backend defers tasks (it has a worker)."""
    return tick.get_backend().supports_defer


def _claim(job: PeriodicJob, now: datetime) -> bool:
    """Whether this caller runs ``job`` now: it is due, and no one else claimed it first."""
    alias = db_for_write()
    rows = PeriodicSchedule.objects.using(alias)
    name = f"job:{job.name}"
    if not rows.filter(name=name).exists():
        try:
            with transaction.atomic(using=alias):
                rows.create(name=name, next_run_at=now)
        except IntegrityError:  # created meanwhile by a concurrent caller
            pass
    # Due a tenth of a tick early, so ticks (or cron runs) that come a little early still count.
    due = now + _tick_interval() / 10
    claimed = rows.filter(name=name, next_run_at__lte=due).update(
        next_run_at=now + job.interval, last_run_at=now
    )
    return claimed == 1


def run_due_jobs(*, now: datetime | None = None) -> dict[str, Any]:
    """Run the periodic jobs that are due here and now; returns ``{job name: its result}``.

    A job that raises is logged and the others still run; then :class:`PeriodicJobsFailed` is
    raised. A failed job is tried again at its next interval.
    """
    now = now or timezone.now()
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    for job in PERIODIC_JOBS:
        if not _claim(job, now):
            continue
        try:
            results[job.name] = import_string(job.path)()
        except Exception as exc:
            logger.exception("Periodic job %s failed", job.name)
            errors[job.name] = exc
    if errors:
        raise PeriodicJobsFailed(results, errors)
    return results


def _hand_on(token: str, now: datetime) -> str | None:
    """Move the chain's token on from ``token`` and enqueue the next tick; None if stale."""
    if not token:
        return None
    alias = db_for_write()
    new_token = secrets.token_hex(16)
    run_after = now + _tick_interval()
    with transaction.atomic(using=alias):
        moved = (
            PeriodicSchedule.objects.using(alias)
            .filter(name=TICK, token=token)
            .update(token=new_token, next_run_at=run_after, last_run_at=now)
        )
        if not moved:
            return None
        enqueue_on_commit(tick.using(run_after=run_after), new_token, using=alias)
    return new_token


def ensure_ticking(*, now: datetime | None = None) -> str | None:
    """Start the tick chain unless one is alive; returns the new chain's token, else None.

    A chain is alive while its pending tick is due less than three ticks (30 s at least) ago.
    Does nothing on a backend that cannot defer tasks (run ``plunk_tick`` from cron there).
    """
    if not supports_chain():
        return None
    now = now or timezone.now()
    alias = db_for_write()
    rows = PeriodicSchedule.objects.using(alias)
    current = rows.filter(name=TICK).first()
    if current is not None and now - current.next_run_at < _lost_after():
        return None
    new_token = secrets.token_hex(16)
    with transaction.atomic(using=alias):
        if current is None:
            try:
                with transaction.atomic(using=alias):
                    rows.create(name=TICK, token=new_token, next_run_at=now)
            except IntegrityError:  # a concurrent call started it
                return None
        elif not rows.filter(name=TICK, token=current.token).update(
            token=new_token, next_run_at=now
        ):
            return None  # a concurrent call (or the late tick itself) moved it on
        enqueue_on_commit(tick, new_token, using=alias)
    if current is not None:
        logger.warning("The periodic tick was due at %s and is restarted", current.next_run_at)
    return new_token


def start_ticking_after_migrate(using: str) -> None:
    """``post_migrate``: start the chain, so the worker alone runs the periodic jobs."""
    if using != db_for_write() or not supports_chain():
        return
    try:
        ensure_ticking()
    except Exception:  # never fail a migrate; plunk_tick or the next migrate starts it
        logger.warning("Could not start the periodic tick", exc_info=True)


@task
def tick(token: str) -> dict[str, Any]:
    """The periodic tick: hand the chain on to the next tick, then run the due periodic jobs.

    With a token that is not the chain's current one, the tick is stale: it runs nothing and
    only makes sure a chain is alive. On a backend that cannot defer tasks there is no chain and
    the tick just runs the due jobs.
    """
    now = timezone.now()
    if supports_chain():
        new_token = _hand_on(token, now)
        if new_token is None:
            return {"stale": True, "restarted": ensure_ticking() is not None}
    else:
        new_token = None
    return {"next": new_token, "ran": run_due_jobs(now=now)}


@task
def reevaluate_segments(project_id: str, contact_ids: list[str]) -> dict[str, int]:
    """Re-evaluate contacts a committed write touched against the project's tracked segments
    (:func:`plunk_events.services.segments.reevaluate_task`)."""
    from .services import segments

    return segments.reevaluate_task(project_id, contact_ids)


@task
def dispatch_events(project_id: str) -> dict[str, Any]:
    """Hand a project's new events to their consumers (:mod:`plunk_events.services.dispatch`)."""
    from .services import dispatch

    return dispatch.dispatch(project_id)


@task
def compute_segment(segment_id: str) -> dict[str, int] | None:
    """Compute a tracked segment after its create or update committed (None if it is gone or
    no longer tracked)."""
    from .models import Segment
    from .services import segments

    segment = Segment.objects.using(db_for_write()).filter(pk=segment_id).first()
    if segment is None or not (segment.track_membership or segment.type == Segment.Type.STATIC):
        return None
    return segments.compute(segment)


@task
def advance_workflow(execution_id: str, step_id: str) -> str | None:
    """Run a workflow execution from this step until it waits or ends; a no-op when the
    execution is no longer at that step (:func:`plunk_events.services.workflow_runtime.advance`).
    """
    from .services import workflow_runtime

    return workflow_runtime.advance(execution_id, step_id)


@task
def resume_due_workflows(project_id: str) -> dict[str, Any]:
    """Resume the project's workflow runs whose DELAY or wait timeout is due
    (:func:`plunk_events.services.workflow_runtime.resume_due`)."""
    from .services import workflow_runtime

    return workflow_runtime.resume_due(project_id)


@task
def send_email(email_id: str) -> str | None:
    """Hand a PENDING email to the site's ``EMAIL_BACKEND`` and record ``email.sent``; a no-op
    for an email already sent or failed (:func:`plunk_events.services.email_send.deliver`)."""
    from .services import email_send

    return email_send.deliver(email_id)
