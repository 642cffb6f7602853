"""The contact writes' hook into the segment engine (:mod:`.segments`).

Tracks and batches record events, so they only nudge the dispatcher (:mod:`.dispatch`), which
reads the new events back and re-evaluates their contacts, many per task. The contacts API
changes contacts without events (unless the subscription changes): it calls
:func:`contacts_changed`, which enqueues ONE ``tasks.reevaluate_segments`` task for them once
the write commits, if the project has tracked segments (asked at most once a second per
project and process, :func:`has_tracked_segments`; a segment write in this process forgets the
answer at once, other processes within a second, and the periodic recompute covers the gap).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..models import Segment

#: Seconds a process remembers whether a project has tracked segments.
TRACKED_CACHE_SECONDS = 1.0
_tracked_cache: dict[str, tuple[float, bool]] = {}


def tracked_segments(project_id: Any, using: str | None = None):
    """The project's tracked DYNAMIC segments."""
    return Segment.objects.using(using).filter(
        project_id=project_id, type=Segment.Type.DYNAMIC, track_membership=True
    )


def has_tracked_segments(project_id: Any, using: str | None = None) -> bool:
    """Whether the project has tracked DYNAMIC segments; remembered for a second per process,
    and forgotten at once when this process writes a segment (:func:`segment_written`)."""
    key = str(project_id)
    cached = _tracked_cache.get(key)
    clock = time.monotonic()
    if cached is not None and cached[0] > clock:
        return cached[1]
    answer = tracked_segments(project_id, using).exists()
    _tracked_cache[key] = (clock + TRACKED_CACHE_SECONDS, answer)
    return answer


def tracked_segments_projects(using: str | None = None) -> list[str]:
    """Ids of the projects that have tracked DYNAMIC segments."""
    rows = Segment.objects.using(using).filter(type=Segment.Type.DYNAMIC, track_membership=True)
    return [str(p) for p in rows.order_by().values_list("project_id", flat=True).distinct()]


def enqueue_reevaluation(
    project_id: Any, contact_ids: Iterable[Any], *, using: str | None = None
) -> None:
    """Enqueue one ``reevaluate_segments`` task for these contacts once the transaction commits."""
    from .. import tasks

    ids = [str(i) for i in dict.fromkeys(contact_ids)]
    tasks.enqueue_on_commit(tasks.reevaluate_segments, str(project_id), ids, using=using)


def contacts_changed(project, contact_ids: Iterable[Any], *, using: str | None = None) -> None:
    """A contact write changed (or deleted) these contacts of ``project``: re-evaluate them
    after the commit, in a task, if the project has tracked segments. A subscription change
    also recorded an event: the dispatcher is nudged for it (:mod:`.dispatch`)."""
    from .dispatch import events_recorded

    ids = list(contact_ids)
    if not ids:
        return
    if has_tracked_segments(project.pk, using):
        enqueue_reevaluation(project.pk, ids, using=using)
    events_recorded(project, using=using)


def segment_written(segment: Segment, *, using: str | None = None) -> None:
    """Segment create and update call this: forget the cached answers of
    :func:`has_tracked_segments` and :func:`.dispatch.wants_dispatch`, and compute a tracked
    segment once the write commits."""
    from .dispatch import forget

    _tracked_cache.pop(str(segment.project_id), None)
    forget(segment.project_id)
    if segment.type == Segment.Type.DYNAMIC and segment.track_membership:
        from .. import tasks

        tasks.enqueue_on_commit(tasks.compute_segment, str(segment.pk), using=using)
