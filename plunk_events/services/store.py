"""The event store: the one module that writes events and contacts and answers event queries.

The API views, the admin, the management commands and the Python API all call these functions;
nothing else writes the event or contact tables. See ``docs/scaling.md`` for the design.

Ingest (``track``) is race-free on PostgreSQL and SQLite alike: the contact upsert is one
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` that locks the contact row and hands back its
current state, the data merge happens in Python under that lock, and the events are inserted in
the same transaction. Name and stats queries read the daily rollup plus a live tail of raw
events, so they cost O(names), stay exact, and need no counter row in the track transaction.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.models import Count, F, Max, Min, Q, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .. import signals
from ..conf import conf
from ..constants import (
    CONTACT_SUBSCRIBED,
    CONTACT_UNSUBSCRIBED,
    EVENT_NAME_MAX_LENGTH,
    is_system_event,
)
from ..ids import uuid7
from ..models import (
    Contact,
    Event,
    EventDailyCount,
    EventDeletion,
    EventNameTotal,
    IdempotencyKey,
    Project,
)
from .errors import (
    Conflict,
    FieldErrorList,
    IdempotencyKeyReused,
    NotFound,
    PlunkError,
    ValidationFailed,
)
from .references import References, deletion_json, find_references, lock_project
from .validation import (
    MISSING,
    TrackInput,
    check_data,
    check_email,
    check_event_name,
    check_subscribed,
    contact_data_patch,
    merge_contact_data,
)

# ---------------------------------------------------------------------------------------------
# Contacts: the upsert shared by track, batch track and the contacts API


@dataclass
class ContactState:
    """A contact after an upsert, with what changed."""

    id: uuid.UUID
    project_id: uuid.UUID
    email: str
    subscribed: bool
    data: dict | None
    created: bool
    #: The subscription before the write when an existing contact flipped it, else None.
    previous_subscribed: bool | None = None
    #: The stored row lags behind ``data``/``subscribed``: ``_save`` must update it.
    dirty: bool = False

    @property
    def subscription_changed(self) -> bool:
        return self.previous_subscribed is not None

    def subscription_event_name(self) -> str:
        return CONTACT_SUBSCRIBED if self.subscribed else CONTACT_UNSUBSCRIBED

    def as_model(self) -> Contact:
        return Contact(
            id=self.id,
            project_id=self.project_id,
            email=self.email,
            subscribed=self.subscribed,
            data=self.data,
        )


def _db_for_write() -> str:
    return router.db_for_write(Event)


def _prep(model, connection, **values: Any) -> list[Any]:
    """Adapt values for raw SQL through the model fields, so both backends get their types."""
    return [model._meta.get_field(k).get_db_prep_save(v, connection) for k, v in values.items()]


def _upsert_contact_rows(
    connection, project_id: uuid.UUID, changes: list[tuple[str, dict | None, bool | None]], now
) -> dict[str, ContactState]:
    """Create the contacts or lock the existing ones, then apply Plunk's data and subscription
    rules; ``changes`` holds one ``(email, data, subscribed)`` per distinct email.

    One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` for all of them: it locks each existing
    row and hands back its current state, which is what makes concurrent merges for one email
    serialise instead of losing keys. Rows are locked in email order, so concurrent batches
    cannot deadlock. The merged states come back with ``dirty`` set; :func:`_save` writes them.
    Must run inside a transaction.
    """
    changes = sorted(changes, key=lambda change: change[0])
    new_ids, initial, params = {}, {}, []
    for email, data, subscribed in changes:
        new_ids[email] = uuid7()
        initial[email] = (
            merge_contact_data(None, data),
            True if subscribed is None else subscribed,
        )
        params += _prep(
            Contact,
            connection,
            id=new_ids[email],
            project=project_id,
            email=email,
            subscribed=initial[email][1],
            data=initial[email][0],
            created_at=now,
            updated_at=now,
        )
    table = connection.ops.quote_name(Contact._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(changes))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, project_id, email, subscribed, data, created_at, updated_at)"
            f" VALUES {values}"
            " ON CONFLICT (project_id, email) DO UPDATE SET updated_at = EXCLUDED.updated_at"
            " RETURNING id, email, subscribed, data",
            params,
        )
        rows = cursor.fetchall()
    by_email = {change[0]: change for change in changes}
    data_field = Contact._meta.get_field("data")
    states = {}
    for row_id, email, row_subscribed, row_data in rows:
        contact_id = row_id if isinstance(row_id, uuid.UUID) else uuid.UUID(str(row_id))
        _, data, subscribed = by_email[email]
        if contact_id == new_ids[email]:
            initial_data, initial_subscribed = initial[email]
            states[email] = ContactState(
                contact_id, project_id, email, initial_subscribed, initial_data, created=True
            )
            continue
        current_data = data_field.from_db_value(row_data, None, connection)
        current_subscribed = bool(row_subscribed)
        merged = merge_contact_data(current_data, data)
        new_subscribed = current_subscribed if subscribed is None else subscribed
        states[email] = ContactState(
            contact_id,
            project_id,
            email,
            new_subscribed,
            merged,
            created=False,
            previous_subscribed=current_subscribed
            if new_subscribed != current_subscribed
            else None,
            dirty=merged != current_data or new_subscribed != current_subscribed,
        )
    return states


def _upsert_contact_row(
    connection, project_id: uuid.UUID, email: str, data: dict | None, subscribed: bool | None, now
) -> ContactState:
    """:func:`_upsert_contact_rows` for one email."""
    return _upsert_contact_rows(connection, project_id, [(email, data, subscribed)], now)[email]


def _subscription_event(contact: ContactState, now) -> Event:
    """The ``contact.subscribed``/``contact.unsubscribed`` system event of a flip (spec §3.5)."""
    return Event(
        id=uuid7(),
        project_id=contact.project_id,
        contact_id=contact.id,
        name=contact.subscription_event_name(),
        data=None,
        created_at=now,
    )


def _tracked_event(project: Project, contact: ContactState, item: TrackInput, now) -> Event:
    """The event row of a track; ``data`` is stored exactly as sent (spec §3.2)."""
    return Event(
        id=uuid7(),
        project_id=project.pk,
        contact_id=contact.id,
        name=item.event,
        data=item.data,
        created_at=now,
    )


def _save(alias: str, contacts: Iterable[ContactState], events: list[Event]) -> None:
    """Write the merged state of the contacts that changed, then insert the events.

    On PostgreSQL all changed contacts are updated in one statement; SQLite runs in-process, so
    one statement per contact costs no round trip there.
    """
    connection = connections[alias]
    dirty = [c for c in contacts if c.dirty]
    if dirty and connection.vendor == "postgresql":
        params = []
        for contact in dirty:
            params += _prep(
                Contact, connection, id=contact.id, data=contact.data, subscribed=contact.subscribed
            )
        values = ", ".join(["(%s::uuid, %s::jsonb, %s::boolean)"] * len(dirty))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {connection.ops.quote_name(Contact._meta.db_table)} AS c"
                " SET data = v.data, subscribed = v.subscribed"
                f" FROM (VALUES {values}) AS v(id, data, subscribed) WHERE c.id = v.id",
                params,
            )
    else:
        for contact in dirty:
            Contact.objects.using(alias).filter(pk=contact.id).update(
                data=contact.data, subscribed=contact.subscribed
            )
    _insert_events(connection, events)
    for contact in dirty:
        contact.dirty = False


def _insert_events(connection, events: list[Event]) -> None:
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


def _send_signals_on_commit(alias: str, contacts: list[ContactState], events: list[Event]) -> None:
    """Queue the app's signals for after the commit, only if anyone listens."""
    if not (
        signals.event_tracked.has_listeners()
        or signals.contact_subscription_changed.has_listeners()
    ):
        return
    by_id = {c.id: c for c in contacts}

    def send() -> None:
        for contact in contacts:
            if contact.subscription_changed:
                signals.contact_subscription_changed.send(
                    sender=Contact,
                    contact=contact.as_model(),
                    subscribed=contact.subscribed,
                )
        for event in events:
            contact = by_id.get(event.contact_id)
            signals.event_tracked.send(
                sender=Event,
                event=event,
                contact=contact.as_model() if contact else None,
                created_contact=bool(contact and contact.created),
            )

    transaction.on_commit(send, using=alias)


def upsert_contact(
    project: Project, email: str, data: dict | None = None, subscribed: bool | None = None
) -> ContactState:
    """Create or update a contact by email (``POST /contacts``), with the same data and
    subscription rules as track, including the subscription-change system event."""
    alias = _db_for_write()
    now = timezone.now()
    with transaction.atomic(using=alias):
        contact = _upsert_contact_row(connections[alias], project.pk, email, data, subscribed, now)
        events = [_subscription_event(contact, now)] if contact.subscription_changed else []
        _save(alias, [contact], events)
        _send_signals_on_commit(alias, [contact], [])
    return contact


def update_contact(
    project: Project,
    contact_id: uuid.UUID,
    *,
    email: str | None = None,
    data: dict | None = None,
    subscribed: bool | None = None,
) -> Contact:
    """PATCH a contact: change its email (409 if taken), merge data, flip subscription."""
    alias = _db_for_write()
    now = timezone.now()
    with transaction.atomic(using=alias):
        try:
            contact = (
                Contact.objects.using(alias).select_for_update().get(project=project, pk=contact_id)
            )
        except Contact.DoesNotExist:
            raise NotFound("Contact", contact_id) from None
        if email is not None and email != contact.email:
            if Contact.objects.using(alias).filter(project=project, email=email).exists():
                raise Conflict(
                    f'A contact with email "{email}" already exists',
                    details={"email": email},
                )
            contact.email = email
        contact.data = merge_contact_data(contact.data, data)
        previous = contact.subscribed
        if subscribed is not None:
            contact.subscribed = subscribed
        contact.updated_at = now
        try:
            with transaction.atomic(using=alias):
                contact.save(using=alias)
        except IntegrityError:  # another PATCH took the email between our check and save
            raise Conflict(
                f'A contact with email "{email}" already exists', details={"email": email}
            ) from None
        state = ContactState(
            contact.id,
            project.pk,
            contact.email,
            contact.subscribed,
            contact.data,
            created=False,
            previous_subscribed=previous if previous != contact.subscribed else None,
        )
        if state.subscription_changed:
            Event.objects.using(alias).bulk_create([_subscription_event(state, now)])
        _send_signals_on_commit(alias, [state], [])
    return contact


def delete_contact(project: Project, contact_id: uuid.UUID) -> None:
    """Delete a contact and its events; the events go first through the (project, contact) index."""
    alias = _db_for_write()
    with transaction.atomic(using=alias):
        locked = lock_project(project)  # the rollup must not move while we subtract from it
        contact = Contact.objects.using(alias).filter(project=project, pk=contact_id).first()
        if contact is None:
            raise NotFound("Contact", contact_id)
        events = Event.objects.using(alias).filter(project=project, contact=contact)
        if locked.events_rolled_until is not None:
            rolled = _rollup_rows(events.filter(created_at__lt=locked.events_rolled_until))
            _add_to_rollup(alias, project, [{**row, "n": -row["n"]} for row in rolled])
        events.delete()
        contact.delete(using=alias)


# ---------------------------------------------------------------------------------------------
# Track


@dataclass(frozen=True)
class TrackResult:
    contact_id: uuid.UUID
    event_id: uuid.UUID
    timestamp: datetime
    created_contact: bool


def find_idempotency_key(project: Project, key: str) -> None:
    """Raise 409 if ``key`` was already used by a committed request of this project."""
    claim = (
        IdempotencyKey.objects.filter(project=project, key=key, expires_at__gt=timezone.now())
        .only("key", "method", "path", "created_at", "status_code")
        .first()
    )
    if claim is not None:
        raise _key_reused(claim)


def _key_reused(claim: IdempotencyKey) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f'Idempotency-Key "{claim.key}" has already been used',
        details={
            "key": claim.key,
            "originalRequest": f"{claim.method} {claim.path}",
            "originalRequestAt": iso_timestamp(claim.created_at),
            "originalStatusCode": claim.status_code,
        },
    )


def _claim_idempotency_key(alias: str, project: Project, key: str, path: str, now) -> None:
    """Insert the claim in the caller's transaction: it commits with the event or not at all.

    A concurrent request with the same key waits on the unique index until the first commits
    (then gets 409) or rolls back (then proceeds), so a key never outlives a failed request.
    """
    connection = connections[alias]
    table = connection.ops.quote_name(IdempotencyKey._meta.db_table)
    params = _prep(
        IdempotencyKey,
        connection,
        project=project.pk,
        key=key,
        method="POST",
        path=path,
        status_code=200,
        created_at=now,
        expires_at=now + timedelta(hours=conf.IDEMPOTENCY_KEY_TTL_HOURS),
    )
    # Inserts a new claim or takes over an expired one; returns no row for a live claim.
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (project_id, "key", method, path, status_code, created_at, expires_at)'
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ' ON CONFLICT (project_id, "key") DO UPDATE SET method = EXCLUDED.method,'
            " path = EXCLUDED.path, status_code = EXCLUDED.status_code,"
            " created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at"
            f" WHERE {table}.expires_at <= EXCLUDED.created_at"
            " RETURNING id",
            params,
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        raise _key_reused(IdempotencyKey.objects.using(alias).get(project=project, key=key))


#: The whole track in one statement (PostgreSQL). ``old`` locks an existing contact and keeps
#: its subscription; ``up`` merges the data patch into the locked row (``||`` then ``-``), or
#: inserts the new contact; ``at`` stamps the events once the lock is held; ``sub`` adds the
#: ``contact.(un)subscribed`` event of a flip, then the tracked event. If another request
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
    data = NULLIF((COALESCE(c.data, '{{}}'::jsonb) || %(to_set)s::jsonb) - %(to_delete)s::text[],
                  '{{}}'::jsonb),
    subscribed = COALESCE(%(subscribed)s::boolean, c.subscribed),
    updated_at = EXCLUDED.updated_at
  WHERE EXISTS (SELECT 1 FROM old)
  RETURNING c.id, c.subscribed
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
SELECT up.id, ev.created_at, (SELECT count(*) FROM sub) FROM up, ev
"""


def _track_in_one_statement(connection, project: Project, item: TrackInput) -> TrackResult:
    """The common track on PostgreSQL: one round trip, committed by itself in autocommit.

    Same rules as the general path (the data patch is :func:`contact_data_patch`); taken when
    no ``Idempotency-Key`` is sent and no signal receiver needs the contact's new state.
    """
    to_set, to_delete = contact_data_patch(item.data)
    data_field = Contact._meta.get_field("data")
    quote = connection.ops.quote_name
    sql = _TRACK_SQL.format(
        contact=quote(Contact._meta.db_table), event=quote(Event._meta.db_table)
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
            contact_id, created_at, _ = row
            return TrackResult(contact_id, event_id, created_at, contact_id == new_id)
    raise OperationalError("The contact kept changing under a concurrent track; retry")


def _has_signal_receivers() -> bool:
    return (
        signals.event_tracked.has_listeners()
        or signals.contact_subscription_changed.has_listeners()
    )


def track(
    project: Project,
    item: TrackInput,
    *,
    idempotency_key: str | None = None,
    path: str = "/v1/track",
) -> TrackResult:
    """Record one event for a contact, creating or updating the contact (spec §3).

    Contact upsert, the optional subscription-change event and the event insert commit together;
    the ``event_tracked`` signal is sent after the commit. On PostgreSQL the common case is one
    statement (:func:`_track_in_one_statement`).
    """
    alias = _db_for_write()
    connection = connections[alias]
    if (
        connection.vendor == "postgresql"
        and idempotency_key is None
        and not _has_signal_receivers()
    ):
        return _track_in_one_statement(connection, project, item)
    now = timezone.now()
    with transaction.atomic(using=alias):
        if idempotency_key is not None:
            _claim_idempotency_key(alias, project, idempotency_key, path, now)
        contact = _upsert_contact_row(
            connection, project.pk, item.email, item.data, item.subscribed, now
        )
        # Stamp the events once the row lock is held, so concurrent tracks of one contact
        # list their events in the order they changed it.
        now = timezone.now()
        events = [_subscription_event(contact, now)] if contact.subscription_changed else []
        event = _tracked_event(project, contact, item, now)
        events.append(event)
        _save(alias, [contact], events)
        _send_signals_on_commit(alias, [contact], [event])
    return TrackResult(contact.id, event.id, now, contact.created)


def track_many(
    project: Project,
    items: list[TrackInput],
    *,
    idempotency_key: str | None = None,
    path: str = "/v1/track/batch",
) -> list[TrackResult]:
    """Record several valid events in one transaction with set-based statements.

    Contacts are upserted once per distinct email (in a fixed order, so concurrent batches lock
    rows in the same order and cannot deadlock); all events go in one multi-row INSERT.
    """
    if not items:
        return []
    alias = _db_for_write()
    connection = connections[alias]
    now = timezone.now()
    by_email: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_email.setdefault(item.email, []).append(index)
    with transaction.atomic(using=alias):
        if idempotency_key is not None:
            _claim_idempotency_key(alias, project, idempotency_key, path, timezone.now())
        contacts: dict[str, ContactState] = {}
        #: Item index -> the contact state right after that item flipped the subscription.
        flips: dict[int, ContactState] = {}
        first = {email: items[indexes[0]] for email, indexes in by_email.items()}
        upserted = _upsert_contact_rows(
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
                    state = _apply_in_memory(state, items[index])
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
                # The system event goes right before the event whose item flipped it (spec §3.5).
                events.append(_subscription_event(flips[index], now))
            event = _tracked_event(project, contact, item, now)
            events.append(event)
            tracked_events.append(event)
            results.append(TrackResult(contact.id, event.id, now, contact.created))
        _save(alias, contacts.values(), events)
        # Every flip signals once, in request order; the final states resolve event contacts.
        states = [flips[i] for i in sorted(flips)] + list(contacts.values())
        _send_signals_on_commit(alias, list({id(s): s for s in states}.values()), tracked_events)
    return results


def _apply_in_memory(state: ContactState, item: TrackInput) -> ContactState:
    """The next track of the same contact within one transaction, applied to its state."""
    merged = merge_contact_data(state.data, item.data)
    subscribed = state.subscribed if item.subscribed is None else item.subscribed
    return ContactState(
        state.id,
        state.project_id,
        state.email,
        subscribed,
        merged,
        created=state.created,
        previous_subscribed=state.subscribed if subscribed != state.subscribed else None,
        dirty=state.dirty or merged != state.data or subscribed != state.subscribed,
    )


# ---------------------------------------------------------------------------------------------
# Reading events


def iso_timestamp(value: datetime) -> str:
    """JavaScript's ``toISOString()``: UTC, milliseconds, ``Z`` (spec §7)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_cursor(created_at: datetime, event_id: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """Parse a keyset cursor; ``None`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, event_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            return None
        return created_at.astimezone(UTC), uuid.UUID(event_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


EVENT_FIELDS = ("id", "name", "contact_id", "email_id", "data", "created_at")


@dataclass
class EventPage:
    events: list[dict[str, Any]]
    cursor: str | None
    has_more: bool


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
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if has_more else None
    return EventPage(rows, cursor, has_more)


# ---------------------------------------------------------------------------------------------
# Names and stats: rollup + live tail
#
# ``EventDailyCount`` holds, per (UTC day, name), the events created before the project's
# watermark ``Project.events_rolled_until``; the row of the watermark's own day is partial (it
# covers that day up to the watermark). ``EventNameTotal`` holds the all-time sums. The rollup
# advances the watermark to ``now - ROLLUP_LAG_SECONDS``, so the live tail that reads count from
# raw events is a few minutes of events at most.


def _floor_day(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(value: datetime) -> datetime:
    floor = _floor_day(value)
    return floor if floor == value else floor + timedelta(days=1)


def _rollup_rows(events) -> list[dict]:
    """(day, name, n, first, last) aggregates of an event queryset."""
    return list(
        events.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "name")
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by()
    )


def rollup(project: Project, *, now: datetime | None = None) -> int:
    """Fold the events created up to ``now - ROLLUP_LAG_SECONDS`` into the rollup tables.

    Incremental and idempotent; returns the number of (day, name) groups added. Runs lazily from
    the read paths and from ``manage.py plunk_rollup``. The lag must exceed the longest track
    transaction (give the ingest role a ``statement_timeout`` well below it), because an event
    that commits with a ``created_at`` behind the watermark would not be counted.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.ROLLUP_LAG_SECONDS)
    alias = _db_for_write()
    with transaction.atomic(using=alias):
        locked = (
            Project.objects.using(alias)
            .select_for_update(
                skip_locked=connections[alias].features.has_select_for_update_skip_locked
            )
            .filter(pk=project.pk)
            .only("id", "events_rolled_until")
            .first()
        )
        if locked is None:  # another worker is rolling this project up right now
            return 0
        start = locked.events_rolled_until
        events = Event.objects.using(alias).filter(project=project)
        if start is None:
            first = events.order_by("created_at").values_list("created_at", flat=True).first()
            start = min(first, cutoff) if first else cutoff
        rows = []
        if start < cutoff:
            rows = _rollup_rows(events.filter(created_at__gte=start, created_at__lt=cutoff))
            _add_to_rollup(alias, project, rows)
        watermark = max(start, cutoff)
        Project.objects.using(alias).filter(pk=project.pk).update(events_rolled_until=watermark)
        project.events_rolled_until = watermark
    return len(rows)


def _add_to_rollup(alias: str, project: Project, rows: list[dict]) -> None:
    """Add (day, name, n, first, last) groups to the daily counts and the name totals.

    ``n`` may be negative (events removed behind the watermark); rows that reach zero go.
    Call under the project lock.
    """
    if not rows:
        return
    names = {r["name"] for r in rows}
    daily = {
        (row.day, row.name): row
        for row in EventDailyCount.objects.using(alias).filter(
            project=project, day__in={r["day"] for r in rows}, name__in=names
        )
    }
    totals = {
        t.name: t
        for t in EventNameTotal.objects.using(alias).filter(project=project, name__in=names)
    }
    for r in rows:
        day_row = daily.get((r["day"], r["name"]))
        if day_row is None:
            day_row = daily[(r["day"], r["name"])] = EventDailyCount(
                project=project, day=r["day"], name=r["name"], count=0
            )
        day_row.count += r["n"]
        total = totals.get(r["name"])
        if total is None:
            total = totals[r["name"]] = EventNameTotal(
                project=project, name=r["name"], count=0, first_seen=r["first"], last_seen=r["last"]
            )
        total.count += r["n"]
        total.first_seen = min(total.first_seen, r["first"])
        total.last_seen = max(total.last_seen, r["last"])
    _save_counts(alias, EventDailyCount, daily.values(), ["count"])
    _save_counts(alias, EventNameTotal, totals.values(), ["count", "first_seen", "last_seen"])


def _save_counts(alias: str, model, rows: Iterable, fields: list[str]) -> None:
    """Insert new count rows, update changed ones, delete the ones that reached zero."""
    rows = list(rows)
    gone = [r.pk for r in rows if r.pk is not None and r.count <= 0]
    model.objects.using(alias).filter(pk__in=gone).delete()
    model.objects.using(alias).bulk_create(
        [r for r in rows if r.pk is None and r.count > 0], batch_size=1000
    )
    model.objects.using(alias).bulk_update(
        [r for r in rows if r.pk is not None and r.count > 0], fields, batch_size=1000
    )


def _watermark(project: Project) -> datetime | None:
    return (
        Project.objects.filter(pk=project.pk).values_list("events_rolled_until", flat=True).first()
    )


def _ensure_rolled_up(project: Project) -> datetime | None:
    """Roll up lazily when the tail is older than twice the lag; returns the watermark."""
    rolled = _watermark(project)
    due = timezone.now() - timedelta(seconds=2 * conf.ROLLUP_LAG_SECONDS)
    if rolled is None or rolled < due:
        rollup(project)
        rolled = _watermark(project)
    return rolled


@dataclass(frozen=True)
class _WindowSplit:
    """Which part of ``[start, end]`` the rollup answers and which parts raw events answer."""

    first_day: Any  # date or None (open)
    last_day: Any  # date or None: inclusive; may be the watermark's partial day
    raw: list[tuple[datetime | None, datetime | None, bool]]  # (from, to, to_inclusive)


def _split_window(start: datetime | None, end: datetime | None, rolled: datetime | None):
    if rolled is None:
        return _WindowSplit(None, None, [(start, end, True)])
    full_start = _ceil_day(start) if start is not None else None
    full_end = _floor_day(end + timedelta(microseconds=1)) if end is not None else None
    if full_end is not None and full_end <= _floor_day(rolled):
        covered_end, last_day = full_end, (full_end - timedelta(days=1)).date()
    else:  # up to the watermark, including its own partial day
        covered_end, last_day = rolled, _floor_day(rolled).date()
    if full_start is not None and full_start >= covered_end:
        return _WindowSplit(None, None, [(start, end, True)])
    raw = []
    if start is not None and start < full_start:
        raw.append((start, full_start, False))
    raw.append((covered_end, end, True))
    return _WindowSplit(full_start.date() if full_start else None, last_day, raw)


def _raw_events(project: Project, ranges) -> Any:
    """Events in any of the (from, to, to_inclusive) ranges."""
    match = Q(pk__in=[])
    for low, high, inclusive in ranges:
        part = Q()
        if low is not None:
            part &= Q(created_at__gte=low)
        if high is not None:
            part &= Q(created_at__lte=high) if inclusive else Q(created_at__lt=high)
        match |= part
    return Event.objects.filter(project=project).filter(match)


def _consistent(project: Project, read: Callable[[datetime | None], Any]) -> Any:
    """Run ``read(watermark)`` and retry if a rollup moved the watermark meanwhile.

    Each statement sees its own snapshot; a rollup committing between the rollup read and the
    raw read would count its events twice. The watermark and the rollup rows change in one
    transaction, so an unchanged watermark after the reads proves they were consistent.
    """
    rolled = _ensure_rolled_up(project)
    for _ in range(5):
        result = read(rolled)
        again = _watermark(project)
        if again == rolled:
            return result
        rolled = again
    return read(rolled)


def event_counts(
    project: Project, start: datetime | None = None, end: datetime | None = None
) -> Counter:
    """Exact number of events per name with ``start <= created_at <= end`` (either open).

    Days before the rollup watermark come from ``EventDailyCount`` (or ``EventNameTotal`` for
    all time); the partial first day and everything after the watermark are counted from the
    events themselves, so an event counts the moment its track has returned.
    """

    def read(rolled):
        counts: Counter = Counter()
        if rolled is not None and start is None and end is None:
            totals = EventNameTotal.objects.filter(project=project)
            counts.update(dict(totals.values_list("name", "count")))
            ranges = [(rolled, None, True)]
        else:
            split = _split_window(start, end, rolled)
            if split.last_day is not None:
                daily = EventDailyCount.objects.filter(project=project, day__lte=split.last_day)
                if split.first_day is not None:
                    daily = daily.filter(day__gte=split.first_day)
                counts.update(dict(daily.values_list("name").annotate(n=Sum("count")).order_by()))
            ranges = split.raw
        raw = _raw_events(project, ranges).values_list("name").annotate(n=Count("id"))
        counts.update(dict(raw.order_by()))
        return +counts

    return _consistent(project, read)


def ranked(counts: Counter) -> list[tuple[str, int]]:
    """Count descending, then name ascending."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def event_names(project: Project) -> list[str]:
    """All event names of the project, most frequent first (``GET /events/names``)."""
    return [name for name, _ in ranked(event_counts(project))]


def event_stats(
    project: Project, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """``[{name, count}]`` for the window, count descending (``GET /events/stats``)."""
    return [{"name": name, "count": n} for name, n in ranked(event_counts(project, start, end))]


def daily_counts(
    project: Project,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    names: Iterable[str] | None = None,
) -> dict[tuple[Any, str], int]:
    """``{(day, name): count}`` of the window for charts, from the same rollup and tail."""
    names = list(names) if names is not None else None

    def read(rolled):
        out: Counter = Counter()
        split = _split_window(start, end, rolled)
        if split.last_day is not None:
            daily = EventDailyCount.objects.filter(project=project, day__lte=split.last_day)
            if split.first_day is not None:
                daily = daily.filter(day__gte=split.first_day)
            if names is not None:
                daily = daily.filter(name__in=names)
            for day, name, n in daily.values_list("day", "name", "count"):
                out[(day, name)] += n
        raw = _raw_events(project, split.raw)
        if names is not None:
            raw = raw.filter(name__in=names)
        rows = (
            raw.annotate(day=TruncDate("created_at", tzinfo=UTC))
            .values_list("day", "name")
            .annotate(n=Count("id"))
            .order_by()
        )
        for day, name, n in rows:
            out[(day, name)] += n
        return dict(+out)

    return _consistent(project, read)


@dataclass
class Usage:
    name: str
    references: References
    total_count: int
    unique_contacts: int
    #: The name's RUNNING delete job, live or abandoned, if any.
    deletion: EventDeletion | None = None

    @property
    def is_system_event(self) -> bool:
        return is_system_event(self.name)

    @property
    def can_delete(self) -> bool:
        """Whether ``DELETE /events/<name>`` would go ahead: not a system event, no references,
        and no live worker deleting it already (an abandoned job is taken over)."""
        return (
            not self.is_system_event
            and not self.references
            and not (self.deletion is not None and self.deletion.worker_alive())
        )

    def as_dict(self) -> dict[str, Any]:
        out = {
            **self.references.as_usage(),
            "totalCount": self.total_count,
            "uniqueContacts": self.unique_contacts,
            "canDelete": self.can_delete,
            "isSystemEvent": self.is_system_event,
        }
        if self.deletion is not None:
            out["deletion"] = deletion_json(self.deletion)
        return out


def event_usage(project: Project, name: str) -> Usage:
    """References, total, exact distinct contacts and running delete job of one name
    (``GET /events/<name>/usage``).

    The total comes from the rollup like ``/events/stats``; distinct contacts are not additive,
    so they are counted from the events, as a hashed ``DISTINCT`` over the (project, name) index
    range rather than a sorting ``count(DISTINCT …)``.
    """
    total = event_counts(project).get(name, 0)
    contacts = (
        Event.objects.filter(project=project, name=name, contact__isnull=False)
        .values("contact_id")
        .distinct()
        .count()
    )
    deletion = EventDeletion.objects.filter(
        project=project, name=name, status=EventDeletion.Status.RUNNING
    ).first()
    return Usage(name, find_references(project, name), total, contacts, deletion)


# ---------------------------------------------------------------------------------------------
# Delete by name


def delete_refusal(project: Project, name: str, *, using: str | None = None) -> PlunkError | None:
    """Why ``name`` cannot be deleted (spec §4.5), or None if it can."""
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
    alias = _db_for_write()
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
    alias = _db_for_write()
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
            survivors = _rollup_rows(
                Event.objects.using(alias).filter(
                    project=project, name=job.name, created_at__lt=locked.events_rolled_until
                )
            )
            _add_to_rollup(alias, project, survivors)
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


def purge_expired_idempotency_keys(now: datetime | None = None) -> int:
    """Delete claims past their TTL (``manage.py plunk_rollup`` runs it)."""
    expired = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now())
    return expired.delete()[0]


def resume_deletion(job: EventDeletion, *, force: bool = False) -> EventDeletion | None:
    """Take over and finish one RUNNING job whose worker is gone; None if a live worker holds it
    (or it is finished already).

    ``force`` takes it over even from a live worker, as long as that worker still holds the lease
    that was read: its next batch then finds the lease gone and rolls back, so nothing is
    deleted or counted twice.
    """
    alias = _db_for_write()
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
    jobs = EventDeletion.objects.using(_db_for_write()).filter(status=EventDeletion.Status.RUNNING)
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


# ---------------------------------------------------------------------------------------------
# Bulk import of historic events (demo data, benchmark seeding, moving data over from Plunk)

IMPORT_BATCH_SIZE = 2000


@dataclass(frozen=True)
class _ImportRow:
    email: str
    name: str
    data: dict | None
    created_at: datetime
    subscribed: bool | None
    email_id: uuid.UUID | None


def _parse_import_rows(rows: Iterable[dict[str, Any]]) -> list[_ImportRow]:
    """Validate every row (field paths ``rows.<i>.<key>``); raise ValidationFailed on any error."""
    errors = FieldErrorList()
    parsed = []
    for index, row in enumerate(rows):
        prefix = f"rows.{index}."
        email = check_email(errors, row.get("email", MISSING), prefix + "email")
        name = check_event_name(errors, row.get("name", MISSING), prefix + "name")
        data = check_data(errors, row.get("data", MISSING), prefix + "data")
        subscribed = check_subscribed(errors, row.get("subscribed", MISSING), prefix + "subscribed")
        created_at = row.get("created_at")
        if not isinstance(created_at, datetime) or created_at.tzinfo is None:
            errors.add(prefix + "created_at", "Expected a timezone-aware datetime", "invalid_type")
        email_id = row.get("email_id")
        if email_id is not None:
            try:
                email_id = uuid.UUID(str(email_id))
            except ValueError:
                errors.add(prefix + "email_id", "Invalid uuid", "invalid_string")
        if not errors:
            parsed.append(_ImportRow(email, name, data, created_at, subscribed, email_id))
    if errors:
        raise ValidationFailed(errors)
    return parsed


def import_events(project: Project, rows: Iterable[dict[str, Any]]) -> int:
    """Import historic events with their own timestamps; returns the number of events written.

    Each row is ``{email, name, data, created_at, subscribed?, email_id?}`` with an aware
    ``created_at``. Rows are applied oldest first, as tracks at those instants would have been:
    one contact upsert per distinct email (a new contact is created at its first row's time),
    custom-event rows merge ``data`` and ``subscribed`` into the contact by the track rules (a
    flip of an existing contact adds ``contact.subscribed``/``contact.unsubscribed`` at that row's
    time, counted in the result), and each event keeps its ``data`` as given. Unlike track,
    system names (``email.sent``…) are accepted because they are history; they never change the
    contact. No signals are sent. A bad row raises ValidationFailed and nothing is written.

    Everything commits in one transaction under the project lock. Days older than the rollup
    watermark are added to the rollup in that transaction (the lazy rollup only folds days after
    it), then ``rollup(project)`` folds the rest. Call it in chunks for very large imports.
    """
    items = sorted(_parse_import_rows(rows), key=lambda item: item.created_at)
    if not items:
        return 0
    by_email: dict[str, list[_ImportRow]] = {}
    for item in items:
        by_email.setdefault(item.email, []).append(item)
    alias = _db_for_write()
    connection = connections[alias]
    with transaction.atomic(using=alias):
        locked = lock_project(project)
        events: list[Event] = []
        for email in sorted(by_email):  # fixed lock order, as in track_many
            group = by_email[email]
            state: ContactState | None = None
            for item in group:
                custom = not is_system_event(item.name)
                change = TrackInput(
                    email,
                    item.name,
                    item.subscribed if custom else None,
                    item.data if custom else None,
                )
                if state is None:
                    state = _upsert_contact_row(
                        connection,
                        project.pk,
                        email,
                        change.data,
                        change.subscribed,
                        item.created_at,
                    )
                else:
                    state = _apply_in_memory(state, change)
                if state.subscription_changed:
                    events.append(_subscription_event(state, item.created_at))
                events.append(
                    Event(
                        id=uuid7(),
                        project_id=project.pk,
                        contact_id=state.id,
                        name=item.name,
                        data=item.data,
                        email_id=item.email_id,
                        created_at=item.created_at,
                    )
                )
            if len(group) > 1 or not state.created:
                Contact.objects.using(alias).filter(pk=state.id).update(
                    data=state.data,
                    subscribed=state.subscribed,
                    updated_at=group[-1].created_at if state.created else timezone.now(),
                )
        Event.objects.using(alias).bulk_create(events, batch_size=IMPORT_BATCH_SIZE)
        watermark = locked.events_rolled_until
        if watermark is not None:
            _merge_into_rollup(alias, project, [e for e in events if e.created_at < watermark])
    rollup(project)
    return len(events)


def _merge_into_rollup(alias: str, project: Project, events: list[Event]) -> None:
    """Add in-memory events from before the rollup watermark to the rollup tables."""
    groups: dict[tuple[Any, str], dict] = {}
    for event in events:
        key = (event.created_at.astimezone(UTC).date(), event.name)
        row = groups.setdefault(
            key,
            {
                "day": key[0],
                "name": event.name,
                "n": 0,
                "first": event.created_at,
                "last": event.created_at,
            },
        )
        row["n"] += 1
        row["first"] = min(row["first"], event.created_at)
        row["last"] = max(row["last"], event.created_at)
    _add_to_rollup(alias, project, list(groups.values()))


# ---------------------------------------------------------------------------------------------
# Synthetic events generated inside PostgreSQL (``manage.py plunk_seed``, the benchmark)

#: A UUIDv7 for the timestamp expression ``{ts}``: 48-bit Unix milliseconds, version 7, then the
#: random and variant bits of ``gen_random_uuid()`` (not ``random()``, so ids never repeat when
#: the same ``setseed`` is used twice, and the seeded content does not depend on them).
_SQL_UUID7 = (
    "(lpad(to_hex(floor(extract(epoch FROM {ts}) * 1000)::bigint), 12, '0')"
    " || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid"
)


def seed_events_sql(
    project: Project,
    *,
    events: int,
    contacts: int,
    names: list[str],
    weights: list[float],
    start: datetime,
    end: datetime,
    seed: float,
    system_names: list[str] | None = None,
    system_share: float = 0.0,
    contact_skew: float = 2.0,
    unsubscribed_share: float = 0.05,
    email_prefix: str = "user",
    email_domain: str = "example.com",
) -> int:
    """Generate ``events`` synthetic events in one ``INSERT … SELECT`` (PostgreSQL only).

    For benchmarks at millions of rows, where :func:`import_events` (one contact upsert per
    email, Python objects per event) is too slow. Contacts ``<prefix><k>@<domain>`` for k in
    1..``contacts`` are created if missing; event k is drawn as ``1 + floor(contacts *
    random()^contact_skew)`` (contact 1 is the busiest), names by ``weights`` (or, with
    probability ``system_share``, uniformly from ``system_names``), timestamps ascend from
    ``start`` to ``end``. ``seed`` (-1..1) goes to ``setseed``, so the same arguments give the
    same rows. Runs under the project lock; events older than the rollup watermark are added to
    the rollup in the same statement, so names and stats stay exact. Call :func:`rollup` after.
    """
    alias = _db_for_write()
    connection = connections[alias]
    if connection.vendor != "postgresql":
        raise NotImplementedError("seed_events_sql needs PostgreSQL; use import_events")
    if events <= 0:
        return 0
    total = float(sum(weights))
    bounds, acc = [], 0.0
    for weight in weights:  # lower bound of each name's bucket for width_bucket()
        bounds.append(acc / total)
        acc += weight
    quote = connection.ops.quote_name
    contact_t, event_t = quote(Contact._meta.db_table), quote(Event._meta.db_table)
    daily_t, totals_t = (
        quote(EventDailyCount._meta.db_table),
        quote(EventNameTotal._meta.db_table),
    )
    params = {
        "p": project.pk,
        "n": events,
        "c": contacts,
        "start": start,
        "span": end - start,
        "seed": seed,
        "skew": contact_skew,
        "unsub": unsubscribed_share,
        "pre": email_prefix,
        "dom": "@" + email_domain,
        "names": list(names),
        "bounds": bounds,
        "sys": list(system_names or ["email.sent"]),
        "nsys": len(system_names or ["email.sent"]),
        "sys_share": system_share if system_names else 0.0,
    }
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        locked = lock_project(project)
        params["wm"] = locked.events_rolled_until
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SELECT setseed(%(seed)s)", params)
        cursor.execute(
            f"INSERT INTO {contact_t} (id, project_id, email, subscribed, data, created_at,"
            " updated_at)"
            f" SELECT {_SQL_UUID7.format(ts='%(start)s::timestamptz')}, %(p)s,"
            " %(pre)s || k || %(dom)s, random() >= %(unsub)s,"
            " jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + floor(random() * 3)::int],"
            " 'signup', k), %(start)s, %(start)s"
            " FROM generate_series(1, %(c)s) AS k"
            " ON CONFLICT (project_id, email) DO NOTHING",
            params,
        )
        cursor.execute("CREATE TEMP TABLE plunk_seed_contact (k int PRIMARY KEY, id uuid NOT NULL)")
        cursor.execute(
            "INSERT INTO plunk_seed_contact SELECT k, c.id FROM generate_series(1, %(c)s) AS k"
            f" JOIN {contact_t} c ON c.project_id = %(p)s AND c.email = %(pre)s || k || %(dom)s",
            params,
        )
        cursor.execute("ANALYZE plunk_seed_contact")
        # ``g`` calls random(), so PostgreSQL materialises it: one draw per row, in order.
        cursor.execute(
            "WITH g AS ("
            "  SELECT %(start)s::timestamptz + %(span)s::interval * ((i - 1 + random()) / %(n)s)"
            "           AS ts,"
            "         1 + floor(%(c)s * power(random(), %(skew)s))::int AS k,"
            "         random() AS r_sys, random() AS r_name, random() AS r_data,"
            "         floor(random() * 1000)::int AS v"
            "  FROM generate_series(1, %(n)s) AS i"
            "), picked AS ("
            "  SELECT g.ts, sc.id AS contact_id,"
            "    CASE WHEN g.r_sys < %(sys_share)s"
            "      THEN (%(sys)s::text[])[1 + floor(g.r_name * %(nsys)s)::int]"
            "      ELSE (%(names)s::text[])[width_bucket(g.r_name, %(bounds)s::float8[])] END"
            "      AS name,"
            "    CASE WHEN g.r_sys < %(sys_share)s OR g.r_data < 0.1 THEN NULL"
            "      ELSE jsonb_build_object('plan', (ARRAY['free', 'pro', 'team'])[1 + g.v %% 3],"
            "                              'value', g.v) END AS data"
            "  FROM g JOIN plunk_seed_contact sc ON sc.k = g.k"
            "), ins AS ("
            f"  INSERT INTO {event_t} (id, project_id, contact_id, name, data, email_id, created_at)"
            f"  SELECT {_SQL_UUID7.format(ts='ts')}, %(p)s, contact_id, name, data, NULL, ts"
            "  FROM picked ORDER BY ts"
            "  RETURNING name, created_at"
            "), daily AS ("
            f"  INSERT INTO {daily_t} AS d (project_id, day, name, count)"
            "  SELECT %(p)s, (created_at AT TIME ZONE 'UTC')::date, name, count(*) FROM ins"
            "  WHERE created_at < %(wm)s::timestamptz GROUP BY 2, 3"
            "  ON CONFLICT (project_id, day, name) DO UPDATE SET count = d.count + EXCLUDED.count"
            "  RETURNING 1"
            "), totals AS ("
            f"  INSERT INTO {totals_t} AS t (project_id, name, count, first_seen, last_seen)"
            "  SELECT %(p)s, name, count(*), min(created_at), max(created_at) FROM ins"
            "  WHERE created_at < %(wm)s::timestamptz GROUP BY name"
            "  ON CONFLICT (project_id, name) DO UPDATE SET count = t.count + EXCLUDED.count,"
            "    first_seen = LEAST(t.first_seen, EXCLUDED.first_seen),"
            "    last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen)"
            "  RETURNING 1"
            ")"
            " SELECT count(*) FROM ins",
            params,
        )
        (written,) = cursor.fetchone()
        cursor.execute("DROP TABLE plunk_seed_contact")
    return written
