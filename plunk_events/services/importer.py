"""Bulk import of historic events with their own timestamps (demo data, benchmark seeding on
SQLite, moving data over from Plunk)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from ..constants import is_system_event
from ..ids import uuid7
from ..models import Contact, Event, Project
from .contacts import ContactState, apply_in_memory, subscription_event, upsert_contact_row
from .db import db_for_write
from .errors import FieldErrorList, ValidationFailed
from .references import lock_project
from .rollups import add_to_rollup, rollup
from .validation import (
    MISSING,
    TrackInput,
    check_data,
    check_email,
    check_event_name,
    check_subscribed,
)

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
    alias = db_for_write()
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
                    state = upsert_contact_row(
                        connection,
                        project.pk,
                        email,
                        change.data,
                        change.subscribed,
                        item.created_at,
                    )
                else:
                    state = apply_in_memory(state, change)
                if state.subscription_changed:
                    events.append(subscription_event(state, item.created_at))
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
    add_to_rollup(alias, project, list(groups.values()))
