"""Where the write paths send their statements, and values for their raw SQL."""

from __future__ import annotations

from typing import Any

from django.db import router

from ..models import Event, Project
from .errors import NotFound, uuid_or_404


def db_for_write() -> str:
    """The primary: writes, and the reads inside their transactions, never go to a replica.

    Every table of the app lives in one database, so the Event model stands for all of them.
    """
    return router.db_for_write(Event)


def prep_values(model, connection, **values: Any) -> list[Any]:
    """Adapt values for raw SQL through the model fields, so both backends get their types."""
    return [model._meta.get_field(k).get_db_prep_save(v, connection) for k, v in values.items()]


def project_object_or_404(queryset, project: Project, object_id: Any, resource: str):
    """The project's row of ``queryset`` with that id, or 404 (also for ids that are not UUIDs
    and for rows of other projects)."""
    row = queryset.filter(project=project, pk=uuid_or_404(resource, object_id)).first()
    if row is None:
        raise NotFound(resource, object_id)
    return row
