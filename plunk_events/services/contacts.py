"""Contacts: the upsert shared by track, batch track, import and the contacts API, and the
contacts API's own writes.

A contact upsert is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` that locks the contact row
and hands back its current state; the data merge (:mod:`.contact_data`) happens in Python under
that lock, and the caller's events are inserted in the same transaction, so concurrent tracks of
one email serialise instead of losing keys. A flip of an existing contact's subscription records
``contact.subscribed``/``contact.unsubscribed``; signals go out after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from .. import signals
from ..constants import CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED
from ..ids import uuid7
from ..models import Contact, Event, Project
from .contact_data import merge_contact_data
from .db import db_for_write, prep_values, project_object_or_404
from .errors import Conflict, NotFound
from .events import insert_events
from .reevaluation import contacts_changed
from .references import lock_project
from .rollups import add_to_rollup, rollup_rows
from .validation import TrackInput


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
    #: The stored row lags behind ``data``/``subscribed``: ``save_contacts_and_events`` must update it.
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


def upsert_contact_rows(
    connection,
    project_id: uuid.UUID,
    changes: list[tuple[str, dict | None, bool | None]],
    now,
    *,
    new_subscribed: bool = True,
) -> dict[str, ContactState]:
    """Create the contacts or lock the existing ones, then apply Plunk's data and subscription
    rules; ``changes`` holds one ``(email, data, subscribed)`` per distinct email. A new contact
    whose ``subscribed`` is None gets ``new_subscribed`` (``POST /v1/send`` passes False).

    One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` for all of them: it locks each existing
    row and hands back its current state, which is what makes concurrent merges for one email
    serialise instead of losing keys. Rows are locked in email order, so concurrent batches
    cannot deadlock. The merged states come back with ``dirty`` set; :func:`save_contacts_and_events` writes them.
    Must run inside a transaction.
    """
    changes = sorted(changes, key=lambda change: change[0])
    new_ids, initial, params = {}, {}, []
    for email, data, subscribed in changes:
        new_ids[email] = uuid7()
        initial[email] = (
            merge_contact_data(None, data),
            new_subscribed if subscribed is None else subscribed,
        )
        params += prep_values(
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


def upsert_contact_row(
    connection, project_id: uuid.UUID, email: str, data: dict | None, subscribed: bool | None, now
) -> ContactState:
    """:func:`upsert_contact_rows` for one email."""
    return upsert_contact_rows(connection, project_id, [(email, data, subscribed)], now)[email]


def subscription_event(contact: ContactState, now) -> Event:
    """The ``contact.subscribed``/``contact.unsubscribed`` system event of a flip."""
    return Event(
        id=uuid7(),
        project_id=contact.project_id,
        contact_id=contact.id,
        name=contact.subscription_event_name(),
        data=None,
        created_at=now,
    )


def save_contacts_and_events(
    alias: str, contacts: Iterable[ContactState], events: list[Event]
) -> None:
    """Write the merged state of the contacts that changed, then insert the events.

    On PostgreSQL all changed contacts are updated in one statement; SQLite runs in-process, so
    one statement per contact costs no round trip there.
    """
    connection = connections[alias]
    dirty = [c for c in contacts if c.dirty]
    if dirty and connection.vendor == "postgresql":
        params = []
        for contact in dirty:
            params += prep_values(
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
    insert_events(connection, events)
    for contact in dirty:
        contact.dirty = False


def send_signals_on_commit(alias: str, contacts: list[ContactState], events: list[Event]) -> None:
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


def apply_in_memory(state: ContactState, item: TrackInput) -> ContactState:
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


def upsert_contact(
    project: Project, email: str, data: dict | None = None, subscribed: bool | None = None
) -> ContactState:
    """Create or update a contact by email (``POST /contacts``), with the same data and
    subscription rules as track, including the subscription-change system event."""
    alias = db_for_write()
    now = timezone.now()
    with transaction.atomic(using=alias):
        contact = upsert_contact_row(connections[alias], project.pk, email, data, subscribed, now)
        events = [subscription_event(contact, now)] if contact.subscription_changed else []
        save_contacts_and_events(alias, [contact], events)
        send_signals_on_commit(alias, [contact], [])
        contacts_changed(project, [contact.id], using=alias)
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
    alias = db_for_write()
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
            Event.objects.using(alias).bulk_create([subscription_event(state, now)])
        send_signals_on_commit(alias, [state], [])
        contacts_changed(project, [contact.id], using=alias)
    return contact


def delete_contact(project: Project, contact_id: uuid.UUID) -> None:
    """Delete a contact and its events; the events go first through the (project, contact) index."""
    alias = db_for_write()
    with transaction.atomic(using=alias):
        locked = lock_project(project)  # the rollup must not move while we subtract from it
        contact = Contact.objects.using(alias).filter(project=project, pk=contact_id).first()
        if contact is None:
            raise NotFound("Contact", contact_id)
        events = Event.objects.using(alias).filter(project=project, contact=contact)
        if locked.events_rolled_until is not None:
            rolled = rollup_rows(events.filter(created_at__lt=locked.events_rolled_until))
            add_to_rollup(alias, project, [{**row, "n": -row["n"]} for row in rolled])
        events.delete()
        contact.delete(using=alias)
        contacts_changed(project, [contact_id], using=alias)  # recounts its segments


def get_contact(project: Project, contact_id: Any, *, using: str | None = None) -> Contact:
    """The project's contact, or 404 (also for ids that are not UUIDs)."""
    return project_object_or_404(Contact.objects.using(using), project, contact_id, "Contact")
