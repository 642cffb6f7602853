"""Upkeep of the event store: ``manage.py plunk_rollup`` and the periodic tick
(:mod:`plunk_events.tasks`) both run :func:`fold_rollups`."""

from __future__ import annotations

from collections.abc import Callable

from ..models import Project
from . import ingest, rollups


def fold_rollups(*, report: Callable[[Project, int], None] | None = None) -> dict[str, int]:
    """Fold new events of every project into its rollups, then purge expired idempotency keys.

    Each project is one short transaction (:func:`rollups.rollup`); a project whose row lock is
    busy (a delete, another rollup) is left for the next run. ``report(project, groups)`` is
    called after each project. Returns the totals: ``projects``, ``groups`` (day/name groups
    added) and ``purged`` (idempotency keys).
    """
    projects = groups = 0
    for project in Project.objects.order_by("name"):
        added = rollups.rollup(project)
        projects += 1
        groups += added
        if report is not None:
            report(project, added)
    purged = ingest.purge_expired_idempotency_keys()
    return {"projects": projects, "groups": groups, "purged": purged}
