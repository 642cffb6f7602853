"""Delete by name: the guard, the job with its worker lease, batches, and resumption."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from ..conf import conf
from ..constants import EVENT_NAME_MAX_LENGTH, is_system_event
from ..models import Event, EventDailyCount, EventDeletion, EventNameTotal, Project
from .db import db_for_write
from .errors import Conflict, PlunkError
from .references import deletion_json, find_references, lock_project
from .rollups import add_to_rollup, rollup_rows


def delete_refusal(project: Project, name: str, *, using: str | None = None) -> PlunkError | None:
    """Why ``name`` cannot be deleted, or None if it can."""
    if is_system_event(name):
        return PlunkError(f"Cannot delete reserved system event: {name}", code="BAD_REQUEST")
    refs = find_references(project, name, using=using)
    if refs:
        return PlunkError(
            f"Cannot delete event: used in {len(refs.segments)} segment(s) and "
            f"{len(refs.workflows)} workflow(s)",
            code="CONFLICT",
            status_code=400,
            details=refs.as_usage(),
        )
    return None


def _lease(now: datetime) -> dict[str, Any]:
    """Column values of a fresh lease for a new worker token."""
    return {
        "owner": uuid.uuid4().hex,
        "heartbeat_at": now,
        "lease_expires_at": now + timedelta(seconds=conf.DELETE_LEASE_SECONDS),
    }


def _abandoned(now: datetime) -> Q:
    """RUNNING jobs nobody holds: the lease ran out, or a failing worker released it."""
    return Q(status=EventDeletion.Status.RUNNING) & (
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    )


def _claim(alias: str, job: EventDeletion, condition: Q, **changes: Any) -> EventDeletion | None:
    """Compare-and-swap the job's lease to a new token where ``condition`` still holds.

    One conditional ``UPDATE``: of two claimers, the second waits for the first's row lock
    (PostgreSQL) or its write transaction (SQLite), then finds the condition false. Returns the
    job re-read with the claim (``_lease_owner`` set), or None if someone else holds it.
    """
    lease = _lease(timezone.now())
    if (
        not EventDeletion.objects.using(alias)
        .filter(condition, pk=job.pk)
        .update(**lease, **changes)
    ):
        return None
    claimed = EventDeletion.objects.using(alias).get(pk=job.pk)
    claimed._lease_owner = lease["owner"]
    return claimed


def _deletion_in_progress(job: EventDeletion) -> Conflict:
    return Conflict(
        f'Event "{job.name}" is already being deleted by another worker',
        details={"eventName": job.name, "deletion": deletion_json(job)},
    )


def start_deletion(project: Project, name: str) -> EventDeletion:
    """Check the guard, record the job and take its lease, in one transaction under the project
    lock; :func:`run_deletion` then runs the claimed job.

    Segment and workflow writes take the same lock and refuse names with a running job, so no
    reference can slip in between the check and the delete. A running job for the same name
    whose worker is gone (its lease expired) is taken over, with its cutoff moved to now: the
    new request asks for every event up to now. While its worker is alive the request is refused
    with 409 CONFLICT (details: the job), so one job never has two deleters.
    """
    alias = db_for_write()
    with transaction.atomic(using=alias):
        lock_project(project)
        refusal = delete_refusal(project, name, using=alias)
        if refusal is not None:
            raise refusal
        now = timezone.now()
        job = (
            EventDeletion.objects.using(alias)
            .filter(project=project, name=name, status=EventDeletion.Status.RUNNING)
            .first()
        )
        if job is None:
            lease = _lease(now)
            job = EventDeletion.objects.using(alias).create(
                project=project, name=name, cutoff=now, **lease
            )
            job._lease_owner = lease["owner"]
            return job
        claimed = _claim(alias, job, _abandoned(now), cutoff=now)
        if claimed is None:
            job.refresh_from_db(using=alias)
            raise _deletion_in_progress(job)
    return claimed


class _LeaseLost(Exception):
    """Another worker took the job over: this worker's last transaction is rolled back."""


def run_deletion(job: EventDeletion, *, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete the job's events in batches, one short transaction each.

    A batch is one ``DELETE … WHERE id IN (SELECT … LIMIT n)`` along the (project, name,
    created_at) index. Its size starts at ``DELETE_BATCH_SIZE`` and halves whenever a batch
    takes longer than ``DELETE_BATCH_SECONDS`` (a loaded server), growing back when batches are
    fast, so no transaction holds its locks for long. Only events created up to the job's cutoff
    go, so events tracked after the request survive; each batch commits its progress, so an
    interrupted job resumes where it stopped.

    The worker runs under the job's lease (see :func:`start_deletion`; a job that is not claimed
    yet is claimed first, 409 if a live worker holds it). Each batch's progress update renews
    the lease on condition that this worker still holds it; if another worker took the job over
    (this one stalled past ``DELETE_LEASE_SECONDS``), the batch rolls back and 409 is raised, so
    every event is counted once. A worker that fails releases the lease, so the job can be
    resumed at once; a killed one leaves it to expire.
    """
    alias = db_for_write()
    owner = getattr(job, "_lease_owner", None)
    if owner is None:
        claimed = _claim(alias, job, _abandoned(timezone.now()))
        if claimed is None:
            job.refresh_from_db(using=alias)
            raise _deletion_in_progress(job)
        job, owner = claimed, claimed._lease_owner
    try:
        _run_batches(alias, job, owner, on_batch)
        _finish_deletion(alias, job, owner)
    except _LeaseLost:
        job.refresh_from_db(using=alias)
        raise _deletion_in_progress(job) from None
    except BaseException:
        _release(alias, job, owner)
        raise
    finally:
        job._lease_owner = None
    return job.deleted_count


def _run_batches(
    alias: str, job: EventDeletion, owner: str, on_batch: Callable[[int], None] | None
) -> None:
    size = conf.DELETE_BATCH_SIZE
    target = conf.DELETE_BATCH_SECONDS
    events = Event.objects.using(alias).filter(
        project_id=job.project_id, name=job.name, created_at__lte=job.cutoff
    )
    while True:
        started = time.monotonic()
        with transaction.atomic(using=alias):
            batch = events.order_by("-created_at", "-id").values("id")[:size]
            deleted, _ = Event.objects.using(alias).filter(id__in=Subquery(batch)).delete()
            now = timezone.now()
            held = (
                EventDeletion.objects.using(alias)
                .filter(pk=job.pk, owner=owner, status=EventDeletion.Status.RUNNING)
                .update(
                    deleted_count=F("deleted_count") + deleted,
                    heartbeat_at=now,
                    lease_expires_at=now + timedelta(seconds=conf.DELETE_LEASE_SECONDS),
                )
            )
            if not held:
                raise _LeaseLost
        job.deleted_count += deleted
        elapsed = time.monotonic() - started
        if on_batch:
            on_batch(deleted)
        if deleted < size:
            break
        if elapsed > target:
            size = max(MIN_DELETE_BATCH, size // 2)
        elif elapsed < target / 4:
            size = min(conf.DELETE_BATCH_SIZE, size * 2)


MIN_DELETE_BATCH = 100


def _release(alias: str, job: EventDeletion, owner: str) -> None:
    """Give the lease up after a failure so the job is resumable at once (best effort: with the
    database gone, the lease simply expires)."""
    with suppress(DatabaseError):  # the original error matters more
        EventDeletion.objects.using(alias).filter(pk=job.pk, owner=owner).update(
            owner="", lease_expires_at=None
        )


def _finish_deletion(alias: str, job: EventDeletion, owner: str) -> None:
    """Drop the name's rollup rows, re-count any survivors already inside the rollup, close the job."""
    project = Project.objects.using(alias).get(pk=job.project_id)
    with transaction.atomic(using=alias):
        locked = lock_project(project)
        now = timezone.now()
        closed = (
            EventDeletion.objects.using(alias)
            .filter(pk=job.pk, owner=owner, status=EventDeletion.Status.RUNNING)
            .update(
                status=EventDeletion.Status.DONE,
                finished_at=now,
                owner="",
                heartbeat_at=now,
                lease_expires_at=None,
            )
        )
        if not closed:
            raise _LeaseLost
        EventDailyCount.objects.using(alias).filter(project=project, name=job.name).delete()
        EventNameTotal.objects.using(alias).filter(project=project, name=job.name).delete()
        if locked.events_rolled_until is not None:
            survivors = rollup_rows(
                Event.objects.using(alias).filter(
                    project=project, name=job.name, created_at__lt=locked.events_rolled_until
                )
            )
            add_to_rollup(alias, project, survivors)
    job.status = EventDeletion.Status.DONE
    job.finished_at = now


def delete_events_by_name(project: Project, name: str) -> int:
    """Guarded delete of every event named ``name`` (``DELETE /events/<name>``); returns the count
    of its job (with what an abandoned job it took over had deleted already). 409 CONFLICT while
    a live worker is deleting the name."""
    if len(name) > EVENT_NAME_MAX_LENGTH:  # no event can have it, but the guard still speaks
        refusal = delete_refusal(project, name)
        if refusal is not None:
            raise refusal
        return 0
    job = start_deletion(project, name)
    return run_deletion(job)


def resume_deletion(job: EventDeletion, *, force: bool = False) -> EventDeletion | None:
    """Take over and finish one RUNNING job whose worker is gone; None if a live worker holds it
    (or it is finished already).

    ``force`` takes it over even from a live worker, as long as that worker still holds the lease
    that was read: its next batch then finds the lease gone and rolls back, so nothing is
    deleted or counted twice.
    """
    alias = db_for_write()
    condition = _abandoned(timezone.now())
    if force:
        condition |= Q(status=EventDeletion.Status.RUNNING, owner=job.owner)
    claimed = _claim(alias, job, condition)
    if claimed is None:
        return None
    run_deletion(claimed)
    return claimed


def resume_deletions(project: Project | None = None, *, force: bool = False) -> list[EventDeletion]:
    """Finish every abandoned deletion job (``manage.py plunk_resume_deletions``): those whose
    worker was killed (lease expired) or failed; with ``force``, running ones too."""
    jobs = EventDeletion.objects.using(db_for_write()).filter(status=EventDeletion.Status.RUNNING)
    if not force:
        jobs = jobs.filter(_abandoned(timezone.now()))
    if project is not None:
        jobs = jobs.filter(project=project)
    done = []
    for job in jobs.order_by("created_at"):
        finished = resume_deletion(job, force=force)
        if finished is not None:
            done.append(finished)
    return done
