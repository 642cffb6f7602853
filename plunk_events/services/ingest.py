"""Ingest: ``POST /v1/track`` and the batch, each with its Idempotency-Key claim.

Contact upsert, the optional subscription-change event and the event insert commit together. On
PostgreSQL a track without an Idempotency-Key is one statement (:func:`uses_one_statement`);
everything else takes the general path of :mod:`.contacts`. Both apply the same merge rule
(:mod:`.contact_data`). The claims, and with ``IDEMPOTENCY_REPLAY`` the stored responses, are
:mod:`.idempotency`'s; they commit in the transaction of the writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import OperationalError, connections, transaction
from django.utils import timezone

from ..constants import CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED
from ..ids import uuid7
from ..models import Contact, Event, Project
from . import idempotency
from .contact_data import MERGED_DATA_SQL, contact_data_patch, merge_contact_data
from .contacts import (
    ContactState,
    apply_in_memory,
    save_contacts_and_events,
    send_signals_on_commit,
    subscription_event,
    upsert_contact_row,
    upsert_contact_rows,
)
from .db import db_for_write
from .dispatch import events_recorded
from .idempotency import purge_expired_idempotency_keys as purge_expired_idempotency_keys
from .validation import TrackInput


@dataclass(frozen=True)
class TrackResult:
    contact_id: uuid.UUID
    event_id: uuid.UUID
    timestamp: datetime
    created_contact: bool


#: The whole track in one statement (PostgreSQL). ``old`` locks an existing contact and keeps
#: its subscription; ``up`` merges the data patch into the locked row with the merge rule's SQL
#: (:data:`.contact_data.MERGED_DATA_SQL`), or inserts the new contact; ``at`` stamps the events
#: once the lock is held; ``sub`` adds the ``contact.(un)subscribed`` event of a flip, then the
#: tracked event. The contact's new state comes back for the signals. If another request
#: created the contact after this statement's snapshot, ``old`` is empty, ``up`` updates
#: nothing and no row comes back: the caller runs the statement again.
_TRACK_SQL = """
WITH old AS (
  SELECT id, subscribed FROM {contact}
  WHERE project_id = %(project)s AND email = %(email)s FOR UPDATE
), up AS (
  INSERT INTO {contact} AS c (id, project_id, email, subscribed, data, created_at, updated_at)
  VALUES (%(new_id)s, %(project)s, %(email)s, COALESCE(%(subscribed)s::boolean, true),
          %(initial)s, %(now)s, %(now)s)
  ON CONFLICT (project_id, email) DO UPDATE SET
    data = {merged_data},
    subscribed = COALESCE(%(subscribed)s::boolean, c.subscribed),
    updated_at = EXCLUDED.updated_at
  WHERE EXISTS (SELECT 1 FROM old)
  RETURNING c.id, c.subscribed, c.data
), at AS (
  SELECT clock_timestamp() AS at FROM up
), sub AS (
  INSERT INTO {event} (id, project_id, contact_id, name, data, email_id, created_at)
  SELECT %(sub_id)s, %(project)s, up.id,
         CASE WHEN up.subscribed THEN %(subscribed_name)s ELSE %(unsubscribed_name)s END,
         NULL, NULL, at.at
  FROM up, at, old WHERE old.subscribed IS DISTINCT FROM up.subscribed
  RETURNING 1
), ev AS (
  INSERT INTO {event} (id, project_id, contact_id, name, data, email_id, created_at)
  SELECT %(event_id)s, %(project)s, up.id, %(name)s, %(data)s, NULL, at.at FROM up, at
  RETURNING created_at
)
SELECT up.id, ev.created_at, up.subscribed, up.data, (SELECT subscribed FROM old) FROM up, ev
"""


def uses_one_statement(connection, idempotency_key: str | None) -> bool:
    """Which path a track takes: one statement on PostgreSQL unless an Idempotency-Key must be
    claimed in the same transaction; the general path (:mod:`.contacts`) otherwise."""
    return connection.vendor == "postgresql" and idempotency_key is None


def _track_in_one_statement(
    alias: str, project: Project, item: TrackInput
) -> tuple[TrackResult, ContactState, Event]:
    """The common track on PostgreSQL: one round trip, committed by itself in autocommit.

    Same rules as the general path: the same patch (:func:`.contact_data.contact_data_patch`),
    merged by the rule's SQL twin.
    """
    connection = connections[alias]
    to_set, to_delete = contact_data_patch(item.data)
    data_field = Contact._meta.get_field("data")
    quote = connection.ops.quote_name
    sql = _TRACK_SQL.format(
        contact=quote(Contact._meta.db_table),
        event=quote(Event._meta.db_table),
        merged_data=MERGED_DATA_SQL.format(column="c.data"),
    )
    for _ in range(3):
        new_id, sub_id, event_id = uuid7(), uuid7(), uuid7()
        params = {
            "project": project.pk,
            "email": item.email,
            "new_id": new_id,
            "subscribed": item.subscribed,
            "initial": data_field.get_db_prep_save(merge_contact_data(None, item.data), connection),
            "now": timezone.now(),
            "to_set": data_field.get_db_prep_save(to_set, connection),
            "to_delete": to_delete,
            "sub_id": sub_id,
            "subscribed_name": CONTACT_SUBSCRIBED,
            "unsubscribed_name": CONTACT_UNSUBSCRIBED,
            "event_id": event_id,
            "name": item.event,
            "data": Event._meta.get_field("data").get_db_prep_save(item.data, connection),
        }
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            contact_id, created_at, subscribed, data, old_subscribed = row
            flipped = old_subscribed is not None and old_subscribed != subscribed
            contact = ContactState(
                contact_id,
                project.pk,
                item.email,
                subscribed,
                data_field.from_db_value(data, None, connection),
                created=contact_id == new_id,
                previous_subscribed=old_subscribed if flipped else None,
            )
            event = Event(
                id=event_id,
                project_id=project.pk,
                contact_id=contact_id,
                name=item.event,
                data=item.data,
                created_at=created_at,
            )
            result = TrackResult(contact_id, event_id, created_at, contact.created)
            return result, contact, event
    raise OperationalError("The contact kept changing under a concurrent track; retry")


def track(
    project: Project,
    item: TrackInput,
    *,
    idempotency_key: str | None = None,
    path: str = "/v1/track",
    replay: idempotency.Replayable | None = None,
) -> TrackResult:
    """Record one event for a contact, creating or updating the contact (``POST /v1/track``).

    Contact upsert, the optional subscription-change event and the event insert commit together
    (with the claim of ``idempotency_key`` and, given ``replay``, the rendered response); the
    signals are sent after the commit. The path is :func:`uses_one_statement`'s choice.
    """
    alias = db_for_write()
    connection = connections[alias]
    if uses_one_statement(connection, idempotency_key):
        result, contact, event = _track_in_one_statement(alias, project, item)
        send_signals_on_commit(alias, [contact], [event])
        events_recorded(project, using=alias)
        return result
    now = timezone.now()
    with transaction.atomic(using=alias):
        if idempotency_key is not None:
            idempotency.claim(alias, project, idempotency_key, path, now, replay)
        contact = upsert_contact_row(
            connection, project.pk, item.email, item.data, item.subscribed, now
        )
        # Stamp the events once the row lock is held, so concurrent tracks of one contact
        # list their events in the order they changed it.
        now = timezone.now()
        events = [subscription_event(contact, now)] if contact.subscription_changed else []
        event = _tracked_event(project, contact, item, now)
        events.append(event)
        save_contacts_and_events(alias, [contact], events)
        send_signals_on_commit(alias, [contact], [event])
        events_recorded(project, using=alias)
        result = TrackResult(contact.id, event.id, now, contact.created)
        if replay is not None and idempotency_key is not None:
            idempotency.complete(alias, project, idempotency_key, replay, result)
    return result


def track_many(
    project: Project,
    items: list[TrackInput],
    *,
    idempotency_key: str | None = None,
    path: str = "/v1/track/batch",
    replay: idempotency.Replayable | None = None,
) -> list[TrackResult]:
    """Record several valid events in one transaction with set-based statements (and the claim
    of ``idempotency_key`` and, given ``replay``, the rendered response, as :func:`track`).

    Contacts are upserted once per distinct email (in a fixed order, so concurrent batches lock
    rows in the same order and cannot deadlock); all events go in one multi-row INSERT.
    """
    if not items:
        return []
    alias = db_for_write()
    connection = connections[alias]
    now = timezone.now()
    by_email: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_email.setdefault(item.email, []).append(index)
    with transaction.atomic(using=alias):
        if idempotency_key is not None:
            idempotency.claim(alias, project, idempotency_key, path, timezone.now(), replay)
        contacts: dict[str, ContactState] = {}
        #: Item index -> the contact state right after that item flipped the subscription.
        flips: dict[int, ContactState] = {}
        first = {email: items[indexes[0]] for email, indexes in by_email.items()}
        upserted = upsert_contact_rows(
            connection,
            project.pk,
            [(email, item.data, item.subscribed) for email, item in first.items()],
            now,
        )
        for email, group in by_email.items():
            # Apply the group's data and subscription in request order, as separate tracks would.
            state = upserted[email]
            for index in group:
                if index != group[0]:
                    state = apply_in_memory(state, items[index])
                if state.subscription_changed:
                    flips[index] = state
            contacts[email] = state
        now = timezone.now()  # after the row locks, as in track()
        results = []
        events: list[Event] = []
        tracked_events = []
        for index, item in enumerate(items):
            contact = contacts[item.email]
            if index in flips:
                # The system event goes right before the event whose item flipped it.
                events.append(subscription_event(flips[index], now))
            event = _tracked_event(project, contact, item, now)
            events.append(event)
            tracked_events.append(event)
            results.append(TrackResult(contact.id, event.id, now, contact.created))
        save_contacts_and_events(alias, contacts.values(), events)
        # Every flip signals once, in request order; the final states resolve event contacts.
        states = [flips[i] for i in sorted(flips)] + list(contacts.values())
        send_signals_on_commit(alias, list({id(s): s for s in states}.values()), tracked_events)
        events_recorded(project, using=alias)
        if replay is not None and idempotency_key is not None:
            idempotency.complete(alias, project, idempotency_key, replay, results)
    return results


def _tracked_event(project: Project, contact: ContactState, item: TrackInput, now) -> Event:
    """The event row of a track; ``data`` is stored exactly as sent."""
    return Event(
        id=uuid7(),
        project_id=project.pk,
        contact_id=contact.id,
        name=item.event,
        data=item.data,
        created_at=now,
    )
