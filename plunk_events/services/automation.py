"""Segments: the writes that can add references to event names (workflows: :mod:`.workflows`).

Every create, update and delete runs in one transaction that first calls
:func:`references.guard_new_references` with the event names the new state references. That
takes the project lock the delete guard of ``DELETE /events/<name>`` takes, so a reference can
never appear between the guard's check and the deletion, and names being deleted are refused
(409), unless the deletion's worker is gone: then the write finishes it and goes ahead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

from ..models import Project, Segment
from . import deletion, references, segment_query
from .conditions import validate_condition
from .db import db_for_write, project_object_or_404
from .errors import ValidationFailed
from .reevaluation import segment_written

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


def finishing_abandoned_deletions(write: Callable[..., T]) -> Callable[..., T]:
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


@finishing_abandoned_deletions
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


@finishing_abandoned_deletions
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
