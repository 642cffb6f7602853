"""Membership rows of STATIC and tracked DYNAMIC segments: the conditional writes that decide
who records an entry or exit, the ``segment.<slug>.entry|exit`` events and the cached counts.

Exactly once. A (segment, contact) pair has one row, ever (a unique constraint). An entry is
``INSERT … ON CONFLICT DO UPDATE … WHERE exited_at IS NOT NULL RETURNING contact_id``: only a
new row or a reactivated one comes back; a row that is already active (entered by a concurrent
recompute) does not. An exit is ``UPDATE … SET exited_at WHERE exited_at IS NULL RETURNING
contact_id``. The rows that come back, and only those, get their event, in the same
transaction, so of two concurrent recomputes exactly one records each entry and each exit.
Statements take chunks of at most :data:`CHUNK` contacts (:data:`PG_CHUNK` on PostgreSQL,
where the membership write and the events are one statement).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from .. import signals
from ..ids import uuid7
from ..models import Contact, Event, Segment, SegmentMembership
from .events import insert_events

#: Contacts per statement.
CHUNK = 1000

ENTRY, EXIT = "entry", "exit"


def chunks(ids: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def stores_membership(segment: Segment) -> bool:
    """STATIC and tracked DYNAMIC segments keep rows; untracked DYNAMIC ones are evaluated live."""
    return segment.type == Segment.Type.STATIC or segment.track_membership


def active_rows(segment: Segment, using: str | None = None):
    return SegmentMembership.objects.using(using).filter(
        project_id=segment.project_id, segment=segment, exited_at__isnull=True
    )


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _sql_parts(alias: str, segment: Segment, contact_ids: list[Any]):
    connection = connections[alias]
    quote = connection.ops.quote_name
    pk = Contact._meta.pk
    ids = [pk.get_db_prep_value(_uuid(i), connection) for i in contact_ids]
    project = Segment._meta.get_field("project").get_db_prep_value(segment.project_id, connection)
    segment_id = Segment._meta.pk.get_db_prep_value(segment.pk, connection)
    marks = ", ".join(["%s"] * len(ids))
    return connection, quote, ids, project, segment_id, marks


def enter(alias: str, segment: Segment, contact_ids: list[Any], now: datetime) -> list[uuid.UUID]:
    """Make the contacts members; returns those that were not (new or re-entered) members.

    Contacts that no longer exist are skipped (the rows are selected from the contact table).
    """
    if not contact_ids:
        return []
    connection, quote, ids, project, segment_id, marks = _sql_parts(alias, segment, contact_ids)
    table = quote(SegmentMembership._meta.db_table)
    at = SegmentMembership._meta.get_field("entered_at").get_db_prep_value(now, connection)
    sql = (
        f"INSERT INTO {table} (project_id, segment_id, contact_id, entered_at, exited_at)"
        f" SELECT c.project_id, %s, c.id, %s, NULL FROM {quote(Contact._meta.db_table)} c"
        f" WHERE c.project_id = %s AND c.id IN ({marks})"
        " ON CONFLICT (project_id, segment_id, contact_id) DO UPDATE"
        " SET entered_at = excluded.entered_at, exited_at = NULL"
        f" WHERE {table}.exited_at IS NOT NULL"
        " RETURNING contact_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [segment_id, at, project, *ids])
        return [_uuid(row[0]) for row in cursor.fetchall()]


def leave(alias: str, segment: Segment, contact_ids: list[Any], now: datetime) -> list[uuid.UUID]:
    """End the contacts' memberships; returns those that were members until now."""
    if not contact_ids:
        return []
    connection, quote, ids, project, segment_id, marks = _sql_parts(alias, segment, contact_ids)
    table = quote(SegmentMembership._meta.db_table)
    at = SegmentMembership._meta.get_field("exited_at").get_db_prep_value(now, connection)
    sql = (
        f"UPDATE {table} SET exited_at = %s"
        f" WHERE project_id = %s AND segment_id = %s AND exited_at IS NULL"
        f" AND contact_id IN ({marks}) RETURNING contact_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [at, project, segment_id, *ids])
        return [_uuid(row[0]) for row in cursor.fetchall()]


def event_name(segment: Segment, kind: str) -> str:
    return f"segment.{segment.slug}.{kind}"


def event_data(segment: Segment) -> dict[str, str]:
    return {"segmentId": str(segment.pk), "segmentName": segment.name}


def _event(segment: Segment, kind: str, contact_id: Any, now: datetime, event_id=None) -> Event:
    return Event(
        id=event_id or uuid7(),
        project_id=segment.project_id,
        contact_id=contact_id,
        name=event_name(segment, kind),
        data=event_data(segment),
        created_at=now,
    )


def record(
    alias: str, segment: Segment, kind: str, contact_ids: list[uuid.UUID], now: datetime
) -> list[Event]:
    """Insert one ``segment.<slug>.<kind>`` event per contact (the caller's transaction)."""
    events = [_event(segment, kind, contact_id, now) for contact_id in contact_ids]
    if events:
        insert_events(connections[alias], events)
    return events


#: The membership write of an entry or exit and the insert of its events, as one statement
#: (PostgreSQL): ``changed`` returns only the rows this statement entered or exited, and only
#: those get an event. The event ids are made in Python (UUIDv7, like every event's), one per
#: candidate contact, and joined to the changed rows.
_ENTRY_SQL = """
WITH changed AS (
  INSERT INTO {membership} AS m (project_id, segment_id, contact_id, entered_at, exited_at)
  SELECT c.project_id, %(segment)s, c.id, %(at)s, NULL FROM {contact} c
  WHERE c.project_id = %(project)s AND c.id = ANY(%(contacts)s::uuid[])
  ON CONFLICT (project_id, segment_id, contact_id) DO UPDATE
  SET entered_at = excluded.entered_at, exited_at = NULL WHERE m.exited_at IS NOT NULL
  RETURNING m.contact_id
){events}"""
_EXIT_SQL = """
WITH changed AS (
  UPDATE {membership} SET exited_at = %(at)s
  WHERE project_id = %(project)s AND segment_id = %(segment)s AND exited_at IS NULL
  AND contact_id = ANY(%(contacts)s::uuid[])
  RETURNING contact_id
){events}"""
_EVENTS_SQL = """, recorded AS (
  INSERT INTO {event} (id, project_id, contact_id, name, data, email_id, created_at)
  SELECT v.id, %(project)s, changed.contact_id, %(name)s, %(data)s, NULL, %(at)s
  FROM changed JOIN unnest(%(event_ids)s::uuid[], %(contacts)s::uuid[]) AS v(id, contact_id)
  ON v.contact_id = changed.contact_id
  RETURNING id, contact_id
)
SELECT id, contact_id FROM recorded"""

#: Contacts per statement on PostgreSQL, where the ids travel as two array parameters.
PG_CHUNK = 10_000


def _write_and_record_pg(
    alias: str, segment: Segment, kind: str, contact_ids: list[Any], now: datetime
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Enter or exit contacts and insert their events in one statement (see ``_ENTRY_SQL``);
    returns ``(event id, contact id)`` of each change."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    sql = (_ENTRY_SQL if kind == ENTRY else _EXIT_SQL).format(
        membership=quote(SegmentMembership._meta.db_table),
        contact=quote(Contact._meta.db_table),
        events=_EVENTS_SQL.format(event=quote(Event._meta.db_table)),
    )
    contacts = [_uuid(i) for i in contact_ids]
    params = {
        "project": _uuid(segment.project_id),
        "segment": _uuid(segment.pk),
        "at": now,
        "contacts": contacts,
        "event_ids": [uuid7() for _ in contacts],
        "name": event_name(segment, kind),
        "data": Event._meta.get_field("data").get_db_prep_save(event_data(segment), connection),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def transition(
    alias: str, segment: Segment, kind: str, contact_ids: Iterable[Any], now: datetime
) -> list[uuid.UUID]:
    """Enter (``kind="entry"``) or exit contacts, each chunk with its events in one
    transaction; signals go after the commit. Returns the contacts that changed.

    On PostgreSQL a chunk of up to :data:`PG_CHUNK` contacts is one statement; elsewhere it is
    the membership write then the event insert, :data:`CHUNK` contacts at a time.
    """
    ids = list(contact_ids)
    changed: list[uuid.UUID] = []
    if connections[alias].vendor == "postgresql":
        for chunk in chunks(ids, PG_CHUNK):
            with transaction.atomic(using=alias):
                rows = _write_and_record_pg(alias, segment, kind, chunk, now)
                if has_listeners(kind):
                    rows.sort(key=lambda row: row[0].int)  # event ids are time-ordered
                    events = [
                        _event(segment, kind, contact_id, now, event_id)
                        for event_id, contact_id in rows
                    ]
                    send_signals_on_commit(alias, segment, kind, events)
            changed += [contact_id for _, contact_id in rows]
    else:
        write = enter if kind == ENTRY else leave
        for chunk in chunks(ids):
            with transaction.atomic(using=alias):
                done = write(alias, segment, chunk, now)
                events = record(alias, segment, kind, done, now)
                send_signals_on_commit(alias, segment, kind, events)
            changed += done
    if changed:  # the events recorded here are new events for the dispatcher (.dispatch)
        from .dispatch import nudge

        project_id = str(segment.project_id)
        transaction.on_commit(lambda: nudge(project_id), using=alias, robust=True)
    return changed


def has_listeners(kind: str) -> bool:
    """Whether anything in this process listens for an entry (or exit) and its event."""
    signal = signals.segment_entered if kind == ENTRY else signals.segment_exited
    return signal.has_listeners() or signals.event_tracked.has_listeners()


def send_signals_on_commit(alias: str, segment: Segment, kind: str, events: list[Event]) -> None:
    """``segment_entered``/``segment_exited`` per contact, and ``event_tracked`` per event."""
    signal = signals.segment_entered if kind == ENTRY else signals.segment_exited
    if not events or not has_listeners(kind):
        return

    def send() -> None:
        contacts = Contact.objects.using(alias).in_bulk([e.contact_id for e in events])
        for event in events:
            contact = contacts.get(event.contact_id)
            signal.send(sender=Segment, segment=segment, contact=contact, event=event)
            signals.event_tracked.send(
                sender=Event, event=event, contact=contact, created_contact=False
            )

    transaction.on_commit(send, using=alias)


def recount(alias: str, segments: Iterable[Segment]) -> dict[Any, int]:
    """Store the number of active rows as ``member_count``: one UPDATE for all the segments."""
    ids = [s.pk for s in segments]
    if not ids:
        return {}
    count = (
        SegmentMembership.objects.using(alias)
        .filter(project_id=OuterRef("project_id"), segment=OuterRef("pk"), exited_at__isnull=True)
        .order_by()
        .values("segment")
        .annotate(n=Count("*"))
        .values("n")
    )
    rows = Segment.objects.using(alias).filter(pk__in=ids)
    rows.update(member_count=Coalesce(Subquery(count), 0))
    counts = dict(rows.values_list("pk", "member_count"))
    for segment in segments:
        segment.member_count = counts.get(segment.pk, 0)
    return counts


def stored_members_q(segment: Segment) -> Q:
    """Contacts (as the outer query) that are active members of ``segment``."""
    return Q(Exists(active_rows(segment).filter(contact=OuterRef("pk"))))
