"""Events as rows: the one place they are inserted, and the keyset-paginated lists of
``GET /events`` and ``GET /events/contact/<id>``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..models import Event, Project


def insert_events(connection, events: list[Event]) -> None:
    """Insert events: with ``COPY`` on PostgreSQL when there are many (no per-row SQL or ORM
    work), else one multi-row ``INSERT`` per thousand."""
    if connection.vendor != "postgresql" or len(events) < COPY_THRESHOLD:
        Event.objects.using(connection.alias).bulk_create(events, batch_size=1000)
        return
    from psycopg.types.json import Jsonb

    columns = "id, project_id, contact_id, name, data, email_id, created_at"
    sql = f"COPY {connection.ops.quote_name(Event._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for e in events:
            data = None if e.data is None else Jsonb(e.data)
            copy.write_row(
                (e.id, e.project_id, e.contact_id, e.name, data, e.email_id, e.created_at)
            )


#: Batches of at least this many events are written with COPY on PostgreSQL.
COPY_THRESHOLD = 20


EVENT_FIELDS = ("id", "name", "contact_id", "email_id", "data", "created_at")


@dataclass
class EventPage:
    events: list[dict[str, Any]]
    has_more: bool
    #: ``(created_at, id)`` of the last event when there are more: pass it back as ``after``.
    next_after: tuple[datetime, uuid.UUID] | None


def list_events(
    project: Project,
    *,
    name: str | None = None,
    contact_id: uuid.UUID | None = None,
    limit: int = 100,
    after: tuple[datetime, uuid.UUID] | None = None,
    with_contact_email: bool = True,
) -> EventPage:
    """Newest events first, optionally of one name or one contact, keyset-paginated.

    Each query is served by one of the (project, …, created_at, id) indexes; a cursor becomes a
    range condition on that index, never an OFFSET.
    """
    qs = Event.objects.filter(project=project)
    if name:
        qs = qs.filter(name=name)
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    if after is not None:
        created_at, event_id = after
        qs = qs.filter(created_at__lte=created_at).exclude(created_at=created_at, id__gte=event_id)
    fields = EVENT_FIELDS + (("contact__email",) if with_contact_email else ())
    rows = list(qs.order_by("-created_at", "-id").values(*fields)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_after = (rows[-1]["created_at"], rows[-1]["id"]) if has_more else None
    return EventPage(rows, has_more, next_after)
